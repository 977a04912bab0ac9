import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { ConfigError } from '../config.js';
import { StoreUnavailableError } from '../errors.js';

/** What SQLite says about a file that is not a database, or one whose pages are damaged. */
const DAMAGED = new Set(['SQLITE_NOTADB', 'SQLITE_CORRUPT']);

/**
 * Opens the SQLite file at `path`, runs `setUp` (pragmas, migrations) and `PRAGMA quick_check`, so a
 * damaged file stops start-up at once instead of failing every request later. A file that is not a
 * sound SQLite database throws a ConfigError whose message is one line naming DATABASE_URL.
 */
export function openSqliteDatabase(path: string, setUp: (database: Database) => void): Database {
  let database: Database | undefined;
  try {
    database = new BetterSqlite3(path);
    setUp(database);
    assertSqliteIntact(database, path);
    return database;
  } catch (error) {
    database?.close();
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && DAMAGED.has(code)) throw damaged(path, (error as Error).message);
    throw error;
  }
}

/** Throws a ConfigError when `PRAGMA quick_check` finds the open database damaged (it reads every page: O(size), start-up only). */
export function assertSqliteIntact(database: Database, path: string): void {
  const problems = (database.pragma('quick_check(5)') as { quick_check: string }[]).map((row) => row.quick_check);
  if (problems.length !== 1 || problems[0] !== 'ok') throw damaged(path, problems.join('; '));
}

function damaged(path: string, detail: string): ConfigError {
  return new ConfigError(
    `DATABASE_URL: ${path} is not a valid SQLite database (quick_check: ${detail.replace(/\s+/g, ' ').slice(0, 300)}); restore it from a backup or point DATABASE_URL at another file.`,
  );
}

/** SQLite's codes for a store that cannot serve now (full, read-only, locked, damaged, I/O failure), as opposed to a bad statement. */
const UNAVAILABLE = /^SQLITE_(FULL|IOERR|CORRUPT|NOTADB|READONLY|CANTOPEN|BUSY|LOCKED|PROTOCOL)/;

/** Turns SQLite's "cannot serve now" errors into STORE_UNAVAILABLE (503, retryable); anything else passes unchanged. */
export function toStoreError(error: unknown): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !UNAVAILABLE.test(code)) return error;
  return new StoreUnavailableError('The conversation store cannot be used right now (its disk may be full or its file damaged). Please try again in a moment.', error);
}

/** A prepared statement whose failures go through `toStoreError`. */
export function guardStatement(statement: Statement): Statement {
  const guard =
    <A extends unknown[], R>(method: (...args: A) => R) =>
    (...args: A): R => {
      try {
        return method.apply(statement, args);
      } catch (error) {
        throw toStoreError(error);
      }
    };
  return Object.assign(Object.create(statement) as Statement, {
    get: guard(statement.get),
    all: guard(statement.all),
    run: guard(statement.run),
  });
}
