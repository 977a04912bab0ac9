import type pg from 'pg';
import { LeaseConnection } from './postgres-lease-connection.js';
import { fromStoredText, toStoredText } from './postgres-text.js';

/** The database's clock in milliseconds: every instance compares heartbeats on one clock, whatever its own says. */
export const DB_NOW = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint';

/** A turn being reaped, as the store holds it (`contextId` is its store key). */
export interface ReapedTurn {
  turnId: string;
  contextId: string;
  model: string;
  createdAt: number;
  answer: string;
  tokenCount: number;
}

/** How a reaped turn ends: `interrupted` (its instance died), or `cancelled` (a cancel found its instance dead). */
export type ReapStatus = 'interrupted' | 'cancelled';

/** What the reap step found in a sealed log: the answer it holds, and how it had already ended, if it had. */
export interface LoggedTurn {
  answer: string;
  tokenCount: number;
  /** The log had ended already as a reap ends it (an earlier reap sealed it, then failed to mark the row): the row follows the log. */
  endedAs?: ReapStatus | undefined;
}

/** What the reap step did: what each sealed log holds, and the turns whose logs it could not seal. */
export interface ReapStepResult {
  logged: ReadonlyMap<string, LoggedTurn>;
  /** Left `streaming`, for the next reap to seal: marked now, their readers on other instances would wait on an open log. */
  unsealed: ReadonlySet<string>;
}

/**
 * Called with the turns about to be reaped, their rows locked: ends their shared logs (so readers on
 * other instances get a final event) and tells what each log holds. The store keeps, for each, the
 * longer of that and its last saved answer. A step that fails as a whole leaves every turn `streaming`.
 */
export type ReapStep = (turns: readonly ReapedTurn[], status: ReapStatus) => Promise<ReapStepResult>;

/** How an instance's liveness is kept and judged. */
export interface InstanceOptions {
  instanceId: string;
  /** An instance whose heartbeat is older than this is dead: its generating turns are reaped. */
  timeoutMs: number;
  /** How often the heartbeat is written (and stale instances looked for); a third of the timeout by default. */
  heartbeatMs?: number;
  /** Told when a heartbeat or a reap fails (the database is out of reach: tried again next time). */
  onError?: (error: unknown) => void;
  /** Told how many turns of dead instances this instance marked `interrupted`. */
  onReaped?: (count: number) => void;
  /** Run on the turns being reaped before they are marked (see ReapStep). */
  onReaping?: ReapStep;
}

/**
 * One process's membership of the instances sharing a database: a row with a heartbeat (and this
 * instance's own timeout), written every `heartbeatMs`; and, after each heartbeat, the reaping of turns
 * left `streaming` by instances whose heartbeat is stale by their own timeout (a compare-and-set on the
 * status, so a turn that ends meanwhile is left alone).
 *
 * The heartbeat has a connection of its own, not one of the request pool's: a pool full of requests (or
 * of connections hung on a stalled database) must not delay it until the instance looks dead. Reaps have
 * another: each is a transaction that waits on Redis to seal logs, and the heartbeat must neither wait
 * behind one nor land inside one (a rollback would drop it). After any error a connection is dropped and
 * its next statement opens a new one.
 *
 * After the database was out of reach, every heartbeat is stale at once, live instances' too. So an
 * instance reaps only after its own heartbeats have succeeded without a gap for a whole timeout, and
 * judges another instance only once it has been connected for that instance's timeout: by then every
 * live instance has written one too.
 */
export class InstanceLease {
  readonly #options: Required<Pick<InstanceOptions, 'heartbeatMs'>> & InstanceOptions;
  readonly #heartbeat: LeaseConnection;
  readonly #reaper: LeaseConnection;
  #timer: NodeJS.Timeout | undefined;
  #connectedSince: number | undefined;
  #beating: Promise<void> | undefined;
  /** The reap the heartbeat started, while it runs: a beat starts no second one. */
  #periodicReap: Promise<void> | undefined;
  #reaping: Promise<unknown> = Promise.resolve();

  /** `config`: the settings of the lease's own connections (the same as the request pool's connections). */
  constructor(config: pg.ClientConfig, options: InstanceOptions) {
    this.#heartbeat = new LeaseConnection(config);
    this.#reaper = new LeaseConnection(config);
    this.#options = { ...options, heartbeatMs: options.heartbeatMs ?? Math.max(50, Math.floor(options.timeoutMs / 3)) };
  }

  /** Registers the instance and starts the heartbeat. */
  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => void this.tick(), this.#options.heartbeatMs);
    this.#timer.unref();
  }

  /** One heartbeat, then (not awaited) a reap if this instance has been connected long enough to judge the others and none is running. */
  async tick(): Promise<void> {
    // Cleared however the beat ends: a beat that failed must not stand in for every later one.
    this.#beating ??= this.#beatThenReap().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  async #beatThenReap(): Promise<void> {
    try {
      await this.#beat();
    } catch (error) {
      // Only a failed heartbeat breaks the run of them; a failed reap is tried again next time.
      this.#connectedSince = undefined;
      this.#options.onError?.(error);
      return;
    }
    if (this.#periodicReap || this.#connectedSince === undefined || performance.now() - this.#connectedSince < this.#options.timeoutMs)
      return;
    this.#periodicReap = this.reap()
      .then(
        (reaped) => {
          if (reaped > 0) this.#options.onReaped?.(reaped);
        },
        (error: unknown) => this.#options.onError?.(error),
      )
      .finally(() => {
        this.#periodicReap = undefined;
      });
  }

  /**
   * Marks `interrupted` every turn left `streaming` by an instance whose heartbeat is stale, or (`goneOnly`)
   * only by instances that have no row any more (stopped, or never recorded); returns how many. With
   * `turnId`, only that turn, and with the given `status` (a cancel whose producer is dead).
   */
  async reap(options: { goneOnly?: boolean; turnId?: string; status?: ReapStatus } = {}): Promise<number> {
    return (await this.#queueReap(options)).length;
  }

  /**
   * Marks `interrupted` the `streaming` turn of one conversation if its instance is dead, judged and sealed as
   * `reap` does; returns its turn_id. For a send that a dead instance's turn would otherwise hold busy until
   * the next reap.
   */
  async reapConversation(contextId: string): Promise<string | undefined> {
    return (await this.#queueReap({ contextId }))[0];
  }

  /** Stops the heartbeat and removes the instance's row, so turns it leaves behind are reaped at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.#periodicReap;
    await this.#reaping;
    await this.#heartbeat.query('DELETE FROM instances WHERE instance_id = $1', [this.#options.instanceId]).catch(() => {});
    await Promise.all([this.#heartbeat.close(), this.#reaper.close()]);
  }

  /** One reap at a time on the reaps' connection: each is a transaction. */
  #queueReap(options: ReapOptions): Promise<string[]> {
    const run = this.#reaping.then(() => this.#reapOnce(options));
    this.#reaping = run.catch(() => {});
    return run;
  }

  /** The turn ids it reaped. */
  async #reapOnce(options: ReapOptions): Promise<string[]> {
    // SKIP LOCKED: a turn whose row a stalled transaction holds is left for the next beat, rather than
    // blocking the reaping of every other one. The status test of each UPDATE is the compare-and-set.
    // An instance is judged by its own timeout (a row written before migration 2 has none: by ours), and only
    // once this one has been connected that long itself ($2), so a live instance has had time to beat again.
    const timeout = 'COALESCE(i.timeout_ms, $1)';
    const alive = options.goneOnly ? '' : `AND (i.heartbeat_at >= ${DB_NOW} - ${timeout} OR ${timeout} > $2)`;
    const connectedFor = this.#connectedSince === undefined ? 0 : performance.now() - this.#connectedSince;
    const parameters: unknown[] = options.goneOnly ? [] : [this.#options.timeoutMs, Math.floor(connectedFor)];
    let oneTurn = '';
    if (options.turnId !== undefined) oneTurn += `AND t.turn_id = $${parameters.push(options.turnId)} `;
    if (options.contextId !== undefined) oneTurn += `AND t.context_id = $${parameters.push(options.contextId)} `;
    const status = options.status ?? 'interrupted';
    const db = this.#reaper;
    await db.query('BEGIN');
    try {
      const { rows } = await db.query(
        `SELECT t.turn_id, t.context_id, t.model, t.created_at, t.answer, t.token_count FROM turns t
         WHERE t.status = 'streaming' ${oneTurn} AND NOT EXISTS (
           SELECT 1 FROM instances i WHERE i.instance_id = t.instance_id ${alive})
         ORDER BY t.turn_id LIMIT 100 FOR UPDATE OF t SKIP LOCKED`,
        parameters,
      );
      const turns: ReapedTurn[] = rows.map((row: Record<string, unknown>) => ({
        turnId: String(row.turn_id),
        contextId: String(row.context_id),
        model: String(row.model),
        createdAt: Number(row.created_at),
        answer: fromStoredText(String(row.answer)),
        tokenCount: Number(row.token_count),
      }));
      // Inside the transaction, so no other reaper seals these logs at once; bounded by Redis's command timeout.
      const { logged, unsealed } = await this.#seal(turns, status);
      const reaped: string[] = [];
      for (const turn of turns) {
        if (unsealed.has(turn.turnId)) continue;
        // The log may hold tokens the last progress save had not stored yet, or (expired) none at all.
        const fromLog = logged.get(turn.turnId);
        const kept = fromLog && fromLog.answer.length > turn.answer.length ? fromLog : turn;
        const { rowCount } = await db.query(
          `UPDATE turns SET status = $2, finished_at = ${DB_NOW}, answer = $3, token_count = $4 WHERE turn_id = $1 AND status = 'streaming'`,
          [turn.turnId, fromLog?.endedAs ?? status, toStoredText(kept.answer), kept.tokenCount],
        );
        if (rowCount) reaped.push(turn.turnId);
      }
      // Rows of instances dead for a day serve no one.
      if (options.turnId === undefined && options.contextId === undefined)
        await db.query(`DELETE FROM instances WHERE heartbeat_at < ${DB_NOW} - 86400000`);
      await db.query('COMMIT');
      return reaped;
    } catch (error) {
      await db.query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  /** The reap step on `turns`; one that fails as a whole is reported, and leaves them all for the next reap. */
  async #seal(turns: readonly ReapedTurn[], status: ReapStatus): Promise<ReapStepResult> {
    if (turns.length === 0 || !this.#options.onReaping) return { logged: new Map(), unsealed: new Set() };
    try {
      return await this.#options.onReaping(turns, status);
    } catch (error) {
      this.#options.onError?.(error);
      return { logged: new Map(), unsealed: new Set(turns.map((turn) => turn.turnId)) };
    }
  }

  async #beat(): Promise<void> {
    await this.#heartbeat.query(
      `INSERT INTO instances (instance_id, started_at, heartbeat_at, timeout_ms) VALUES ($1, ${DB_NOW}, ${DB_NOW}, $2)
       ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, timeout_ms = EXCLUDED.timeout_ms`,
      [this.#options.instanceId, this.#options.timeoutMs],
    );
    this.#connectedSince ??= performance.now();
  }
}

/** Which turns a reap looks at (see InstanceLease.reap). */
interface ReapOptions {
  goneOnly?: boolean;
  turnId?: string;
  contextId?: string;
  status?: ReapStatus;
}
