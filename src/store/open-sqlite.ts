import { accessSync, constants, mkdirSync, statfsSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config.js';
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
    throw databaseError(path, existing.isDirectory() ? 'is a directory; name a file in it, such as sqlite:./data/chatwait.db' : 'is not a regular file');
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
      throw databaseError(path, `needs the directory ${directory}, which cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
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
