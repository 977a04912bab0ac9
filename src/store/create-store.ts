import { ConfigError } from '../config.js';
import type { ConversationStore } from './conversation-store.js';
import { MemoryConversationStore } from './memory-store.js';
import { openSqliteStore } from './open-sqlite-store.js';
import { PostgresConversationStore, type PostgresOpenOptions } from './postgres-store.js';

/** Whether `DATABASE_URL` names PostgreSQL. */
export function isPostgresUrl(databaseUrl: string): boolean {
  return /^postgres(ql)?:\/\//i.test(databaseUrl);
}

/** Which store `DATABASE_URL` names, as `/health` reports it. */
export function storeBackendOf(databaseUrl: string): 'memory' | 'sqlite' | 'postgres' {
  if (isPostgresUrl(databaseUrl)) return 'postgres';
  return databaseUrl === 'memory' ? 'memory' : 'sqlite';
}

/** The store `DATABASE_URL` names when it is not PostgreSQL: `memory` or `sqlite:<path>` (the default). */
export function createConversationStore(databaseUrl: string): ConversationStore {
  if (databaseUrl === 'memory') return new MemoryConversationStore();
  if (databaseUrl.startsWith('sqlite:')) return openSqliteStore(databaseUrl.slice('sqlite:'.length));
  if (isPostgresUrl(databaseUrl))
    throw new ConfigError('DATABASE_URL names PostgreSQL: open it with openConversationStore (it connects and migrates first).');
  throw new ConfigError('DATABASE_URL must be memory, sqlite:<path> or postgres://user:password@host:port/database.');
}

/** Opens the store `DATABASE_URL` names, PostgreSQL included (connecting and migrating it first). */
export async function openConversationStore(databaseUrl: string, postgres: PostgresOpenOptions = {}): Promise<ConversationStore> {
  return isPostgresUrl(databaseUrl) ? PostgresConversationStore.open(databaseUrl, postgres) : createConversationStore(databaseUrl);
}
