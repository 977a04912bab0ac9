import pg from 'pg';

/**
 * One connection of the instance lease's own, outside the request pool, opened on first use. After any
 * error it is dropped and the next statement opens another; a connection known dead (the server
 * restarted, a network cut) is let go at once, so the next statement does not fail on it first.
 */
export class LeaseConnection {
  readonly #config: pg.ClientConfig;
  #client: Promise<pg.Client> | undefined;

  /** `config`: the settings of the connection (the same as the request pool's connections). */
  constructor(config: pg.ClientConfig) {
    this.#config = config;
  }

  /** One statement, on the connection opened first if there is none. */
  async query(sql: string, parameters: unknown[] = []): Promise<pg.QueryResult> {
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

  /** Closes the connection, if one is open; bounded: a database that hangs must not hold the shutdown. */
  async close(): Promise<void> {
    const client = await this.#client?.catch(() => undefined);
    this.#client = undefined;
    if (client) await Promise.race([client.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  #open(): Promise<pg.Client> {
    const client = new pg.Client(this.#config);
    const connecting = client.connect().then(() => client);
    // The listener also keeps the error from crashing the process.
    const drop = () => {
      if (this.#client === connecting) this.#client = undefined;
      void client.end().catch(() => {});
    };
    client.on('error', drop);
    client.on('end', drop);
    return connecting;
  }
}
