import { accessSync, constants, mkdirSync, statfsSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';
import { ConfigError } from '../config.js';
import { StoreUnavailableError } from '../errors.js';
import { TurnConflictError } from './conversation-store.js';
import { SqliteConversationStore } from './sqlite-store.js';

/** Kernel filesystems whose "files" are not storage (statfs magic numbers): procfs, sysfs, cgroup v1 and v2, debugfs. */
const PSEUDO_FILESYSTEMS = new Set([0x9fa0, 0x62656572, 0x27e0eb, 0x63677270, 0x64626720]);

/**
 * Makes sure `path` can hold a SQLite database before SQLite touches it: its folder is a real, writable
 * directory (created if missing, one level at a time) and the file, if it exists, is a regular file.
 * Throws a one-line ConfigError naming DATABASE_URL otherwise.
 */
export function prepareSqlitePath(path: string): void {
  const absolute = resolve(path);
  const existing = statOrUndefined(absolute);
  if (existing && !existing.isFile()) {
    throw databaseError(
      path,
      existing.isDirectory() ? 'is a directory; name a file in it, such as sqlite:./data/chatwait.db' : 'is not a regular file',
    );
  }
  createDirectory(path, dirname(absolute));
  const folder = dirname(absolute);
  if (PSEUDO_FILESYSTEMS.has(Number(statfsSync(folder).type))) {
    throw databaseError(path, `is in ${folder}, a kernel filesystem that cannot hold a database; name a file on a disk`);
  }
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw databaseError(path, `is in ${folder}, which this process cannot write to`);
  }
}

/** Opens the SQLite store `DATABASE_URL=sqlite:<path>` names; a file SQLite cannot use is a one-line ConfigError. */
export function openSqliteStore(path: string): SqliteConversationStore {
  if (path !== ':memory:') prepareSqlitePath(path);
  try {
    return new SqliteConversationStore(path);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const hint =
      code === 'SQLITE_NOTADB'
        ? 'is not a SQLite database (file is not a database); move it away or name another file'
        : `cannot be opened as a SQLite database (${message})`;
    throw databaseError(path, hint);
  }
}

/**
 * Creates `folder` and any missing parents one level at a time: Node's recursive mkdirSync loops
 * forever on a path under /proc, where mkdir answers ENOENT for a parent that exists.
 */
function createDirectory(path: string, folder: string): void {
  const missing: string[] = [];
  let current = folder;
  let stats = statOrUndefined(current);
  while (!stats) {
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
    stats = statOrUndefined(current);
  }
  if (stats && !stats.isDirectory()) throw databaseError(path, `is under ${current}, which is a file, not a directory`);
  for (const directory of missing) {
    try {
      mkdirSync(directory);
    } catch (error) {
      throw databaseError(
        path,
        `needs the directory ${directory}, which cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function databaseError(path: string, problem: string): ConfigError {
  return new ConfigError(`Cannot open the database: DATABASE_URL=sqlite:${path} ${problem}.`);
}

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
  if (code === 'SQLITE_CONSTRAINT_UNIQUE') {
    const message = error instanceof Error ? error.message : '';
    // The index each conflict breaks, by the columns SQLite names: see migrations 1 and 5.
    if (message.endsWith('turns.context_id')) return new TurnConflictError('busy');
    if (message.includes('turns.client_message_id')) return new TurnConflictError('duplicate');
  }
  if (typeof code !== 'string' || !UNAVAILABLE.test(code)) return error;
  return new StoreUnavailableError(
    'The conversation store cannot be used right now (its disk may be full or its file damaged). Please try again in a moment.',
    error,
  );
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
