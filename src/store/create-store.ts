import { ConfigError } from '../config.js';
import type { ConversationStore } from './conversation-store.js';
import { MemoryConversationStore } from './memory-store.js';
import { openSqliteStore } from './open-sqlite-store.js';

/** The store `DATABASE_URL` names: `memory`, `sqlite:<path>` (the default) or, later, PostgreSQL. */
export function createConversationStore(databaseUrl: string): ConversationStore {
  if (databaseUrl === 'memory') return new MemoryConversationStore();
  if (databaseUrl.startsWith('sqlite:')) return openSqliteStore(databaseUrl.slice('sqlite:'.length));
  throw new ConfigError('Cannot open the database: DATABASE_URL names PostgreSQL, which this version of ChatWait does not support yet; use sqlite:<path> or memory.');
}
