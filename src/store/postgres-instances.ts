import pg from 'pg';
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

/**
 * Called with the turns about to be reaped, their rows locked: ends their shared logs (so readers on
 * other instances get a final event) and returns the answer each log holds, by turn id. The store
 * keeps, for each, the longer of that and its last saved answer. A failure is reported and the turns
 * are reaped with their saved answers.
 */
export type ReapStep = (
  turns: readonly ReapedTurn[],
  status: ReapStatus,
) => Promise<ReadonlyMap<string, { answer: string; tokenCount: number }>>;

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
 * instance's own timeout), written every `heartbeatMs`; and, on the same beat, the reaping of turns left
 * `streaming` by instances whose heartbeat is stale by their own timeout (a compare-and-set on the
 * status, so a turn that ends meanwhile is left alone).
 *
 * The lease has its own connection, not one of the request pool's: a pool full of requests (or of
 * connections hung on a stalled database) must not delay the heartbeat until the instance looks dead.
 * After any error the connection is dropped and the next beat opens a new one.
 *
 * After the database was out of reach, every heartbeat is stale at once, live instances' too. So an
 * instance reaps only after its own heartbeats have succeeded without a gap for a whole timeout, and
 * judges another instance only once it has been connected for that instance's timeout: by then every
 * live instance has written one too.
 */
export class InstanceLease {
  readonly #config: pg.ClientConfig;
  readonly #options: Required<Pick<InstanceOptions, 'heartbeatMs'>> & InstanceOptions;
  #timer: NodeJS.Timeout | undefined;
  #connectedSince: number | undefined;
  #beating: Promise<void> | undefined;
  #client: Promise<pg.Client> | undefined;
  #reaping: Promise<unknown> = Promise.resolve();

  /** `config`: the settings of the lease's own connection (the same as the request pool's connections). */
  constructor(config: pg.ClientConfig, options: InstanceOptions) {
    this.#config = config;
    this.#options = { ...options, heartbeatMs: options.heartbeatMs ?? Math.max(50, Math.floor(options.timeoutMs / 3)) };
  }

  /** Registers the instance and starts the heartbeat. */
  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => void this.tick(), this.#options.heartbeatMs);
    this.#timer.unref();
  }

  /** One heartbeat, then a reap if this instance has been connected long enough to judge the others. */
  async tick(): Promise<void> {
    if (this.#beating) return this.#beating;
    // Cleared however the beat ends: a beat that failed must not stand in for every later one.
    this.#beating = this.#beatAndReap().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  async #beatAndReap(): Promise<void> {
    try {
      await this.#beat();
    } catch (error) {
      // Only a failed heartbeat breaks the run of them; a failed reap is tried again next time.
      this.#connectedSince = undefined;
      this.#options.onError?.(error);
      return;
    }
    try {
      if (this.#connectedSince !== undefined && performance.now() - this.#connectedSince >= this.#options.timeoutMs) {
        const reaped = await this.reap();
        if (reaped > 0) this.#options.onReaped?.(reaped);
      }
    } catch (error) {
      this.#options.onError?.(error);
    }
  }

  /**
   * Marks `interrupted` every turn left `streaming` by an instance whose heartbeat is stale, or (`goneOnly`)
   * only by instances that have no row any more (stopped, or never recorded); returns how many. With
   * `turnId`, only that turn, and with the given `status` (a cancel whose producer is dead).
   */
  async reap(options: { goneOnly?: boolean; turnId?: string; status?: ReapStatus } = {}): Promise<number> {
    // One reap at a time on the lease's connection: each is a transaction.
    const run = this.#reaping.then(() => this.#reapOnce(options));
    this.#reaping = run.catch(() => {});
    return (await run).length;
  }

  /** The turn ids it reaped. */
  async #reapOnce(options: { goneOnly?: boolean; turnId?: string; contextId?: string; status?: ReapStatus }): Promise<string[]> {
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
    await this.#query('BEGIN');
    try {
      const { rows } = await this.#query(
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
      const logged =
        turns.length > 0 && this.#options.onReaping
          ? await this.#options.onReaping(turns, status).catch((error: unknown) => {
              this.#options.onError?.(error);
              return new Map<string, { answer: string; tokenCount: number }>();
            })
          : new Map<string, { answer: string; tokenCount: number }>();
      const reaped: string[] = [];
      for (const turn of turns) {
        // The log may hold tokens the last progress save had not stored yet, or (expired) none at all.
        const fromLog = logged.get(turn.turnId);
        const kept = fromLog && fromLog.answer.length > turn.answer.length ? fromLog : turn;
        const { rowCount } = await this.#query(
          `UPDATE turns SET status = $2, finished_at = ${DB_NOW}, answer = $3, token_count = $4 WHERE turn_id = $1 AND status = 'streaming'`,
          [turn.turnId, status, toStoredText(kept.answer), kept.tokenCount],
        );
        if (rowCount) reaped.push(turn.turnId);
      }
      // Rows of instances dead for a day serve no one.
      if (options.turnId === undefined && options.contextId === undefined)
        await this.#query(`DELETE FROM instances WHERE heartbeat_at < ${DB_NOW} - 86400000`);
      await this.#query('COMMIT');
      return reaped;
    } catch (error) {
      await this.#query('ROLLBACK').catch(() => {});
      throw error;
    }
  }

  /**
   * Marks `interrupted` the `streaming` turn of one conversation if its instance is dead, judged and sealed as
   * `reap` does; returns its turn_id. For a send that a dead instance's turn would otherwise hold busy until
   * the next reap.
   */
  async reapConversation(contextId: string): Promise<string | undefined> {
    const run = this.#reaping.then(() => this.#reapOnce({ contextId }));
    this.#reaping = run.catch(() => {});
    return (await run)[0];
  }

  /** Stops the heartbeat and removes the instance's row, so turns it leaves behind are reaped at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.#reaping;
    await this.#query('DELETE FROM instances WHERE instance_id = $1', [this.#options.instanceId]).catch(() => {});
    const client = await this.#client?.catch(() => undefined);
    this.#client = undefined;
    // Bounded: a database that hangs must not hold the shutdown.
    if (client) await Promise.race([client.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  async #beat(): Promise<void> {
    await this.#query(
      `INSERT INTO instances (instance_id, started_at, heartbeat_at, timeout_ms) VALUES ($1, ${DB_NOW}, ${DB_NOW}, $2)
       ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, timeout_ms = EXCLUDED.timeout_ms`,
      [this.#options.instanceId, this.#options.timeoutMs],
    );
    this.#connectedSince ??= performance.now();
  }

  /** One statement on the lease's connection, opened first if there is none; after an error it is dropped, and the next statement opens another. */
  async #query(sql: string, parameters: unknown[] = []): Promise<pg.QueryResult> {
    const connecting = (this.#client ??= this.#open());
    try {
      return await (await connecting).query(sql, parameters);
    } catch (error) {
      if (this.#client === connecting) {
        this.#client = undefined;
        // Not awaited: on a hung database the goodbye would hang too; the socket goes when the server answers or the OS gives up.
        void connecting.then((client) => client.end()).catch(() => {});
      }
      throw error;
    }
  }

  #open(): Promise<pg.Client> {
    const client = new pg.Client(this.#config);
    const connecting = client.connect().then(() => client);
    // A connection known dead (the server restarted, a network cut) is let go at once, so the next beat
    // opens a new one instead of failing on it first (a missed beat). The listener also keeps the error
    // from crashing the process.
    const drop = () => {
      if (this.#client === connecting) this.#client = undefined;
      void client.end().catch(() => {});
    };
    client.on('error', drop);
    client.on('end', drop);
    return connecting;
  }
}
