import type pg from 'pg';
import { ConfigError } from '../config.js';

/**
 * The PostgreSQL schema's history: each entry runs once, in order, in its own transaction. Never edit
 * one that shipped; add another. Times are milliseconds since the epoch (BIGINT), as in SQLite, so
 * cursors and copies between the stores need no conversion. Usage, timings and tool steps are JSON kept as TEXT, as in SQLite (one row shape for both): JSONB
 * refuses the NUL character a tool's output may hold (user messages and answers keep theirs through
 * postgres-text.ts).
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  `CREATE TABLE conversations (
     context_id TEXT PRIMARY KEY,
     owner TEXT,
     title TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     updated_at BIGINT NOT NULL
   );
   CREATE INDEX conversations_by_owner_activity ON conversations (owner, updated_at DESC, context_id DESC);
   CREATE TABLE turns (
     turn_id TEXT PRIMARY KEY,
     context_id TEXT NOT NULL REFERENCES conversations (context_id) ON DELETE CASCADE,
     sequence INTEGER NOT NULL,
     user_message TEXT NOT NULL,
     answer TEXT NOT NULL DEFAULT '',
     status TEXT NOT NULL CHECK (status IN ('streaming', 'complete', 'cancelled', 'interrupted', 'error')),
     model TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     finished_at BIGINT,
     usage TEXT,
     timings TEXT,
     error_code TEXT,
     client_message_id TEXT,
     token_count INTEGER NOT NULL DEFAULT 0,
     tool_steps TEXT,
     instance_id TEXT
   );
   CREATE UNIQUE INDEX turns_by_conversation ON turns (context_id, sequence);
   CREATE UNIQUE INDEX turns_by_client_message ON turns (context_id, client_message_id) WHERE client_message_id IS NOT NULL;
   CREATE INDEX turns_streaming ON turns (status) WHERE status = 'streaming';
   CREATE UNIQUE INDEX turns_one_streaming ON turns (context_id) WHERE status = 'streaming';
   CREATE TABLE instances (
     instance_id TEXT PRIMARY KEY,
     started_at BIGINT NOT NULL,
     heartbeat_at BIGINT NOT NULL
   );`,
  // Each instance's own INSTANCE_TIMEOUT_SECONDS (ms), so instances configured differently judge each other fairly.
  // Rows written before it have none: they are judged by the reaper's own timeout, as before.
  `ALTER TABLE instances ADD COLUMN timeout_ms BIGINT;`,
];

/** A migration (or the wait for another instance's) may take minutes, far past a request's client-side timeout. */
const MIGRATION_QUERY_TIMEOUT_MS = 10 * 60_000;

/** The advisory lock every migrating instance takes: the same number everywhere, arbitrary but fixed ("chat" in ASCII). */
const MIGRATION_LOCK = 0x63686174;

/**
 * Brings the database up to the latest schema; returns the version it ends at. Each migration runs in
 * a transaction that first takes a blocking advisory lock, so instances booting together run each one
 * once: the others wait for the lock, then see it recorded and skip it. A database newer than this code
 * is refused with one line.
 */
export async function migratePostgres(pool: pg.Pool): Promise<number> {
  const connection = await pool.connect();
  // `query_timeout` per query is honoured by pg's Client.query, though its types do not list it.
  const client = {
    query: <R extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
      connection.query<R>({ text, values, query_timeout: MIGRATION_QUERY_TIMEOUT_MS } as pg.QueryConfig),
  };
  try {
    for (;;) {
      await client.query('BEGIN');
      try {
        // A migration may take longer than a request's statement timeout, and so may waiting for another instance's.
        await client.query('SET LOCAL statement_timeout = 0');
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
        const { rows } = await client.query<{ version: number }>(
          'SELECT COALESCE(MAX(version), 0)::integer AS version FROM schema_migrations',
        );
        const current = rows[0]!.version;
        if (current > POSTGRES_MIGRATIONS.length) {
          throw new ConfigError(
            `Cannot use the database: it is at schema version ${current}, newer than this ChatWait knows (${POSTGRES_MIGRATIONS.length}); upgrade ChatWait.`,
          );
        }
        if (current === POSTGRES_MIGRATIONS.length) {
          await client.query('COMMIT');
          return current;
        }
        await client.query(POSTGRES_MIGRATIONS[current]!);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [current + 1, Date.now()]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    }
  } finally {
    connection.release();
  }
}
