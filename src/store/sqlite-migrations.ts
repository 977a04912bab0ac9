import type { Database } from 'better-sqlite3';

/** The schema's history: each entry runs once, in order, in a transaction. Never edit one that shipped; add another. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE conversations (
     context_id TEXT PRIMARY KEY,
     title TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX conversations_by_activity ON conversations (updated_at DESC, context_id DESC);
   CREATE TABLE turns (
     turn_id TEXT PRIMARY KEY,
     context_id TEXT NOT NULL REFERENCES conversations (context_id) ON DELETE CASCADE,
     sequence INTEGER NOT NULL,
     user_message TEXT NOT NULL,
     answer TEXT NOT NULL DEFAULT '',
     status TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'cancelled', 'interrupted', 'error')),
     model TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     finished_at INTEGER,
     usage TEXT,
     timings TEXT,
     error_code TEXT,
     client_message_id TEXT,
     token_count INTEGER NOT NULL DEFAULT 0
   );
   CREATE UNIQUE INDEX turns_by_conversation ON turns (context_id, sequence);
   CREATE UNIQUE INDEX turns_by_client_message ON turns (context_id, client_message_id) WHERE client_message_id IS NOT NULL;
   CREATE INDEX turns_streaming ON turns (status) WHERE status = 'streaming';`,
  // 2: conversations belong to the API key that created them (a digest of it; NULL when keys are off).
  `ALTER TABLE conversations ADD COLUMN owner TEXT;
   DROP INDEX conversations_by_activity;
   CREATE INDEX conversations_by_owner_activity ON conversations (owner, updated_at DESC, context_id DESC);`,
  // 3: the tools a turn called, as a JSON list of steps (NULL when it called none).
  `ALTER TABLE turns ADD COLUMN tool_steps TEXT;`,
  // 4: one row the health check rewrites, after a write failed, to learn whether writes work again.
  `CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), written_at INTEGER NOT NULL);`,
  // 5: the database, not only the process, refuses a second generating turn in a conversation. A file
  // left by a crash may hold several: all but each conversation's newest were interrupted long ago.
  `UPDATE turns SET status = 'interrupted', finished_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
     WHERE status = 'streaming' AND EXISTS (
       SELECT 1 FROM turns later WHERE later.context_id = turns.context_id AND later.status = 'streaming' AND later.sequence > turns.sequence);
   CREATE UNIQUE INDEX turns_one_streaming ON turns (context_id) WHERE status = 'streaming';`,
];

/** Brings a database up to the latest schema; returns the version it ends at. */
export function migrate(database: Database): number {
  database.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const current = (database.prepare('SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations').get() as { version: number })
    .version;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database is at schema version ${current}, newer than this ChatWait (${MIGRATIONS.length}); upgrade ChatWait`);
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    database.transaction(() => {
      database.exec(MIGRATIONS[version - 1]!);
      database.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now());
    })();
  }
  return MIGRATIONS.length;
}
