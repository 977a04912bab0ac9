import pg from 'pg';
import { ConfigError } from '../config.js';
import { StoreUnavailableError } from '../errors.js';
import { TurnConflictError } from './conversation-store.js';
import type { ReapStep } from './postgres-instances.js';

/** How the PostgreSQL store is tuned; every field has a default fit for a chat service. */
export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  maxConnections?: number;
  /**
   * The longest a statement may run on the server, and a connection attempt may take, in ms (default
   * 1500). A whole store operation (waiting for a connection included) is given up on the client 250 ms
   * later, so a request needing the store answers within 2 s even when the database hangs.
   */
  timeoutMs?: number;
  /** Told about a pooled connection that failed while idle (it is dropped; the next query opens another). */
  onIdleError?: (error: Error) => void;
  /** This process's id among the instances sharing the database (default: a new random one). */
  instanceId?: string;
  /**
   * `INSTANCE_TIMEOUT_SECONDS` in ms: an instance silent this long is dead and its turns are reaped (default 30 s).
   * The configuration refuses less than 6 s; tests pass shorter values here directly.
   */
  instanceTimeoutMs?: number;
  /** How often the heartbeat is written (default: a third of the instance timeout). */
  heartbeatMs?: number | undefined;
  /** Told when a heartbeat fails (the database is out of reach). */
  onInstanceError?: (error: unknown) => void;
  /** Told how many turns of dead instances were marked `interrupted`. */
  onReaped?: (count: number) => void;
  /** Ends the shared logs of turns being reaped and returns the answers they hold (see ReapStep). */
  onReaping?: ReapStep;
  /** Told when a turn's final write was refused because another instance had reaped it. */
  onFenced?: (turnId: string) => void;
}

/** int8 (BIGINT, and COUNT(*)) as a JavaScript number: our BIGINTs are milliseconds and counts, far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** How long a statement may run on the server, and a connection attempt may take, by default (ms). */
export const DEFAULT_TIMEOUT_MS = 1500;

/** The client-side limit of one store operation: the server's statement timeout, plus a moment for its own (cleaner) error to arrive first. */
export function operationBudgetMs(options: Pick<PostgresStoreOptions, 'timeoutMs'>): number {
  return (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 250;
}

/**
 * One connection's settings for a `postgres://` URL, shared by the pool and the instance lease's own
 * connection: bounded waits everywhere, so an outage (refused or hung) fails fast instead of hanging.
 */
export function postgresClientConfig(url: string, options: PostgresStoreOptions): pg.ClientConfig {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    // The server stops a statement at the timeout; the client gives up shortly after, for a server that no longer answers at all.
    statement_timeout: timeoutMs,
    query_timeout: operationBudgetMs(options),
    // A client paused or cut off inside a transaction must not hold its row locks for hours.
    idle_in_transaction_session_timeout: 5000,
    keepAlive: true,
    application_name: 'chatwait',
    types,
  };
}

/** How many connections the pool holds (the store's operations take turns for them: see ConnectionPermits). */
export function poolSize(options: Pick<PostgresStoreOptions, 'maxConnections'>): number {
  return options.maxConnections ?? 10;
}

/** The pool's settings for a `postgres://` URL (see postgresClientConfig). */
export function postgresPoolConfig(url: string, options: PostgresStoreOptions): pg.PoolConfig {
  return {
    ...postgresClientConfig(url, options),
    max: poolSize(options),
    idleTimeoutMillis: 30_000,
  };
}

/** A connection inside a transaction, as the store's transaction bodies use it (each statement bounded by the transaction's deadline). */
export interface TransactionClient {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * Whether a connection is still fit for the next statement after `error`: only when the server itself
 * refused the statement and still serves. After a client-side timeout the statement may still be running
 * (or the server hung), and after a cut or a shutdown the connection is gone: it is dropped, never sent
 * a ROLLBACK that would hang too.
 */
export function connectionSurvives(error: unknown): boolean {
  return error instanceof pg.DatabaseError && error.severity !== 'FATAL' && error.severity !== 'PANIC' && !isPostgresUnavailable(error);
}

/** The milliseconds left before `deadline` (a performance.now() time), at least 1: `query_timeout: 0` would mean "none". */
export function remainingMs(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}

// SQLSTATE classes and codes that mean "the database cannot be used now", not "this request is wrong".
const UNAVAILABLE_CLASSES = ['08', '53', '57', '58'];
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Whether an error from `pg` means the database is out of reach or out of service (as opposed to a bad statement). */
export function isPostgresUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNAVAILABLE_NODE_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code)) return UNAVAILABLE_CLASSES.includes(code.slice(0, 2)) || code === '25006';
  }
  const message = error instanceof Error ? error.message : String(error);
  return /timeout|terminat|Connection|closed|read-only standby|connect/i.test(message);
}

/**
 * The error a store operation reports: a database out of reach becomes a retryable
 * StoreUnavailableError (503) without its credentials; at start-up (`url` given) a ConfigError naming
 * DATABASE_URL, so the process says in one line what to fix. Anything else is rethrown as is.
 */
export function toPostgresStoreError(error: unknown, url?: string): Error {
  if (error instanceof ConfigError || error instanceof StoreUnavailableError || error instanceof TurnConflictError) return error;
  const constraint = (error as { constraint?: unknown }).constraint;
  if (
    (error as { code?: unknown }).code === '23505' &&
    (constraint === 'turns_one_streaming' || constraint === 'turns_by_client_message')
  ) {
    return new TurnConflictError(constraint === 'turns_one_streaming' ? 'busy' : 'duplicate');
  }
  const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
  if (url !== undefined) {
    return new ConfigError(`Cannot open the database at DATABASE_URL=${redactUrl(url)}: ${reason}.`);
  }
  if (isPostgresUnavailable(error)) {
    return new StoreUnavailableError(
      `The conversation database cannot be reached (${reason}). Please try again in a moment.`,
      error,
      'DEPENDENCY_UNAVAILABLE',
    );
  }
  return error instanceof Error ? error : new Error(reason);
}

/** A database URL without its password, safe to log and show. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const name of ['password', 'sslpassword']) if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    return parsed.href;
  } catch {
    return 'postgres://…';
  }
}
