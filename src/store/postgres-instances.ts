import type pg from 'pg';

/** The database's clock in milliseconds: every instance compares heartbeats on one clock, whatever its own says. */
export const DB_NOW = '(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint';

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
}

/**
 * One process's membership of the instances sharing a database: a row with a heartbeat, written every
 * `heartbeatMs`; and, on the same beat, the reaping of turns left `streaming` by instances whose
 * heartbeat is stale (a compare-and-set on the status, so a turn that ends meanwhile is left alone).
 *
 * After the database was out of reach, every heartbeat is stale at once, live instances' too. So an
 * instance reaps only after its own heartbeats have succeeded without a gap for a whole timeout: by
 * then every live instance has written one too.
 */
export class InstanceLease {
  readonly #pool: pg.Pool;
  readonly #options: Required<Pick<InstanceOptions, 'heartbeatMs'>> & InstanceOptions;
  #timer: NodeJS.Timeout | undefined;
  #connectedSince: number | undefined;
  #beating: Promise<void> | undefined;

  constructor(pool: pg.Pool, options: InstanceOptions) {
    this.#pool = pool;
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
    this.#beating = (async () => {
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
      } finally {
        this.#beating = undefined;
      }
    })();
    return this.#beating;
  }

  /**
   * Marks `interrupted` every turn left `streaming` by an instance whose heartbeat is stale, or (`goneOnly`)
   * only by instances that have no row any more (stopped, or never recorded); returns how many.
   */
  async reap(options: { goneOnly?: boolean } = {}): Promise<number> {
    // SKIP LOCKED: a turn whose row a stalled transaction holds is left for the next beat, rather than
    // blocking the reaping of every other one. The outer status test is the compare-and-set.
    const alive = options.goneOnly ? '' : `AND i.heartbeat_at >= ${DB_NOW} - $1`;
    const { rowCount } = await this.#pool.query(
      `UPDATE turns SET status = 'interrupted', finished_at = ${DB_NOW}
       WHERE status = 'streaming' AND turn_id IN (
         SELECT t.turn_id FROM turns t WHERE t.status = 'streaming' AND NOT EXISTS (
           SELECT 1 FROM instances i WHERE i.instance_id = t.instance_id ${alive})
         FOR UPDATE SKIP LOCKED)`,
      options.goneOnly ? [] : [this.#options.timeoutMs],
    );
    // Rows of instances dead for a day serve no one.
    await this.#pool.query(`DELETE FROM instances WHERE heartbeat_at < ${DB_NOW} - 86400000`);
    return rowCount ?? 0;
  }

  /** Stops the heartbeat and removes the instance's row, so turns it leaves behind are reaped at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
    await this.#pool.query('DELETE FROM instances WHERE instance_id = $1', [this.#options.instanceId]).catch(() => {});
  }

  async #beat(): Promise<void> {
    await this.#pool.query(
      `INSERT INTO instances (instance_id, started_at, heartbeat_at) VALUES ($1, ${DB_NOW}, ${DB_NOW})
       ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at`,
      [this.#options.instanceId],
    );
    this.#connectedSince ??= performance.now();
  }
}
