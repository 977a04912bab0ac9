import pg from 'pg';

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
   * only by instances that have no row any more (stopped, or never recorded); returns how many.
   */
  async reap(options: { goneOnly?: boolean } = {}): Promise<number> {
    // SKIP LOCKED: a turn whose row a stalled transaction holds is left for the next beat, rather than
    // blocking the reaping of every other one. The outer status test is the compare-and-set.
    // An instance is judged by its own timeout (a row written before migration 2 has none: by ours), and only
    // once this one has been connected that long itself ($2), so a live instance has had time to beat again.
    const timeout = 'COALESCE(i.timeout_ms, $1)';
    const alive = options.goneOnly ? '' : `AND (i.heartbeat_at >= ${DB_NOW} - ${timeout} OR ${timeout} > $2)`;
    const connectedFor = this.#connectedSince === undefined ? 0 : performance.now() - this.#connectedSince;
    const { rowCount } = await this.#query(
      `UPDATE turns SET status = 'interrupted', finished_at = ${DB_NOW}
       WHERE status = 'streaming' AND turn_id IN (
         SELECT t.turn_id FROM turns t WHERE t.status = 'streaming' AND NOT EXISTS (
           SELECT 1 FROM instances i WHERE i.instance_id = t.instance_id ${alive})
         FOR UPDATE SKIP LOCKED)`,
      options.goneOnly ? [] : [this.#options.timeoutMs, Math.floor(connectedFor)],
    );
    // Rows of instances dead for a day serve no one.
    await this.#query(`DELETE FROM instances WHERE heartbeat_at < ${DB_NOW} - 86400000`);
    return rowCount ?? 0;
  }

  /**
   * Marks `interrupted` the `streaming` turn of one conversation if its instance is dead, judged as `reap`
   * judges (its own timeout, once this instance has been connected that long); returns its turn_id. For a send
   * that a dead instance's turn would otherwise hold busy until the next reap.
   */
  async reapConversation(contextId: string): Promise<string | undefined> {
    const timeout = 'COALESCE(i.timeout_ms, $1)';
    const connectedFor = this.#connectedSince === undefined ? 0 : performance.now() - this.#connectedSince;
    const { rows } = await this.#query(
      `UPDATE turns SET status = 'interrupted', finished_at = ${DB_NOW}
       WHERE status = 'streaming' AND turn_id IN (
         SELECT t.turn_id FROM turns t WHERE t.context_id = $3 AND t.status = 'streaming' AND NOT EXISTS (
           SELECT 1 FROM instances i WHERE i.instance_id = t.instance_id
             AND (i.heartbeat_at >= ${DB_NOW} - ${timeout} OR ${timeout} > $2))
         FOR UPDATE SKIP LOCKED)
       RETURNING turn_id`,
      [this.#options.timeoutMs, Math.floor(connectedFor), contextId],
    );
    return (rows[0] as { turn_id: string } | undefined)?.turn_id;
  }

  /** Stops the heartbeat and removes the instance's row, so turns it leaves behind are reaped at once. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#beating;
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
