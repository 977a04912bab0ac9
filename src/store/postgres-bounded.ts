import type pg from 'pg';
import { StoreUnavailableError } from '../errors.js';
import { ConnectionPermits } from './postgres-permits.js';
import { connectionSurvives, remainingMs, toPostgresStoreError, type TransactionClient } from './postgres-pool.js';

/**
 * The least time a statement (COMMIT included) is given, even when the wait for a pooled connection or the
 * statements before it used up most of the budget: a client timeout of a few milliseconds would destroy the
 * connection while the server still runs the statement (a COMMIT could then still commit, unseen). The grace
 * never reaches past the budget plus this floor, so an operation still ends within 1.75 s + 0.25 s = 2 s.
 */
const STATEMENT_FLOOR_MS = 250;

/**
 * One statement on a pooled connection, the connection attempt and the statement together done by
 * `deadline` (a performance.now() time; the pool's own query_timeout would start only once a connection
 * is open). Failures come back as the store reports them (toPostgresStoreError).
 */
export async function boundedQuery<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  deadline: number,
  sql: string,
  parameters: unknown[],
): Promise<pg.QueryResult<R>> {
  const client = await connect(pool);
  try {
    const result = await client.query<R>(statement(sql, parameters, deadline));
    client.release();
    return result;
  } catch (error) {
    client.release(connectionSurvives(error) ? undefined : toError(error));
    throw toPostgresStoreError(error);
  }
}

/** Runs `work` in a transaction done by `deadline` in all; a deadlock or serialization failure is tried again (three times at most). */
export async function boundedTransaction(
  pool: pg.Pool,
  deadline: number,
  work: (client: TransactionClient) => Promise<void>,
): Promise<void> {
  const client = await connect(pool);
  let broken: Error | undefined;
  // Every statement of the work gets what is left of the deadline as its timeout.
  const bounded: TransactionClient = {
    query: <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) => client.query<R>(statement(text, values, deadline)),
  };
  try {
    // A deadlock or serialization failure aborts one side of a race on purpose: that side tries again.
    for (let attempt = 1; ; attempt++) {
      try {
        await bounded.query('BEGIN');
        await work(bounded);
        await bounded.query('COMMIT');
        return;
      } catch (error) {
        if (connectionSurvives(error)) {
          // The server refused a statement and answers: the rollback is quick (given a moment even past the deadline).
          await client.query(statement('ROLLBACK', [], Math.max(deadline, performance.now() + 250))).catch((rollbackError: unknown) => {
            broken = toError(rollbackError);
          });
        } else {
          // A timeout or a cut connection: a ROLLBACK would wait on a server that may not answer. The
          // connection is destroyed instead, and the server rolls the transaction back when it sees it gone.
          broken = toError(error);
        }
        const code = (error as { code?: unknown }).code;
        if (broken || attempt === 3 || (code !== '40P01' && code !== '40001')) throw toPostgresStoreError(error);
      }
    }
  } finally {
    // A connection that could not (or may not) roll back is not given to the next caller: release(error) destroys it.
    client.release(broken);
  }
}

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (error) {
    throw toPostgresStoreError(error);
  }
}

/** A statement given what is left of its operation's deadline as its client-side timeout, but at least STATEMENT_FLOOR_MS while the operation is within its grace. */
function statement(text: string, values: unknown[], deadline: number): pg.QueryConfig {
  const floored = Math.max(deadline, Math.min(performance.now() + STATEMENT_FLOOR_MS, deadline + STATEMENT_FLOOR_MS));
  // `query_timeout` per query is honoured by pg's Client.query, though its types do not list it.
  return { text, values, query_timeout: remainingMs(floored) } as pg.QueryConfig;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * A store's pool with its operations bounded by one budget each, and refused once the store is closed.
 * Operations wait for a connection in ConnectionPermits' queue (patient while the database answers, quick
 * to refuse once it was found out of reach); the budget then covers the connection attempt and the statements.
 */
export class BoundedPool {
  readonly pool: pg.Pool;
  readonly #budgetMs: number;
  readonly #permits: ConnectionPermits;
  #closed = false;

  constructor(pool: pg.Pool, budgetMs: number, size: number) {
    this.pool = pool;
    this.#budgetMs = budgetMs;
    this.#permits = new ConnectionPermits(size);
  }

  /** Refuses every later operation; false when it was already closed. The pool itself is ended by its owner. */
  close(): boolean {
    const wasOpen = !this.#closed;
    this.#closed = true;
    return wasOpen;
  }

  /** One statement within the budget (see boundedQuery). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, parameters: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#run(this.#budgetMs, (deadline) => boundedQuery<R>(this.pool, deadline, sql, parameters));
  }

  /** Runs `work` in a transaction, within one deadline (`budgetMs`, by default the pool's: see boundedTransaction). */
  async transaction(work: (client: TransactionClient) => Promise<void>, budgetMs?: number): Promise<void> {
    return this.#run(budgetMs ?? this.#budgetMs, (deadline) => boundedTransaction(this.pool, deadline, work));
  }

  async #run<T>(budgetMs: number, operation: (deadline: number) => Promise<T>): Promise<T> {
    if (this.#closed) throw toPostgresStoreError(new Error('the store is closed'));
    const startedAt = performance.now();
    await this.#permits.acquire(startedAt + budgetMs);
    // Out of reach, the whole operation keeps to the budget from its start; a wait for a busy pool does not eat into it.
    const deadline = this.#permits.unavailable ? startedAt + budgetMs : performance.now() + budgetMs;
    try {
      const result = await operation(deadline);
      this.#permits.markAvailable();
      return result;
    } catch (error) {
      if (error instanceof StoreUnavailableError && error.code === 'DEPENDENCY_UNAVAILABLE') this.#permits.markUnavailable();
      throw error;
    } finally {
      this.#permits.release();
    }
  }
}
