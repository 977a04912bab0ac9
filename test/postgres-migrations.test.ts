import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { POSTGRES_MIGRATIONS } from '../src/store/postgres-migrations.js';
import { PostgresConversationStore } from '../src/store/postgres-store.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe.skipIf(!hasPostgres())('PostgreSQL migrations', () => {
  it('three instances opening an empty database at once all get the latest schema, each migration run once', async () => {
    const url = await createTestDatabase('migrate');
    const stores = await Promise.all([1, 2, 3].map(() => PostgresConversationStore.open(url)));
    const versions = await query<{ version: number }>(url, 'SELECT version FROM schema_migrations ORDER BY version');
    expect(versions.map((row) => row.version)).toEqual(POSTGRES_MIGRATIONS.map((_, index) => index + 1));
    // Every instance works on the shared schema.
    await stores[0]!.startTurn({ turnId: 't1', contextId: 'c1', userMessage: 'hi', model: 'm', clientMessageId: undefined, owner: null });
    expect((await stores[2]!.getTurn('t1'))?.userMessage).toBe('hi');
    await Promise.all(stores.map((store) => store.close()));
  });

  it('refuses, in one line, a database newer than this ChatWait', async () => {
    const url = await createTestDatabase('newer');
    await (await PostgresConversationStore.open(url)).close();
    await query(url, `INSERT INTO schema_migrations (version, applied_at) VALUES (${POSTGRES_MIGRATIONS.length + 5}, 0)`);
    const failure = await PostgresConversationStore.open(url).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toMatch(/schema version \d+, newer than this ChatWait knows/);
    expect((failure as Error).message).not.toContain('\n');
  });

  it('refuses an unreachable database with a ConfigError naming DATABASE_URL, its password hidden', async () => {
    const failure = await PostgresConversationStore.open('postgres://someone:secret@127.0.0.1:1/nowhere', { timeoutMs: 500 }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toContain('DATABASE_URL=postgres://someone:***@127.0.0.1:1/nowhere');
    expect((failure as Error).message).not.toContain('secret');
  });

  it("upgrades a database of the first schema: an older instance's row, which has no timeout, is judged by the reaper's own", async () => {
    const url = await createTestDatabase('upgrade');
    // The database as ChatWait left it before instances stored their timeouts: migration 1 only, one silent instance mid-turn.
    await query(url, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL); ${POSTGRES_MIGRATIONS[0]}`);
    await query(
      url,
      `INSERT INTO schema_migrations VALUES (1, 0);
       INSERT INTO instances VALUES ('old', 0, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint - 5000);
       INSERT INTO conversations VALUES ('c-old', NULL, 't', 0, 0);
       INSERT INTO turns (turn_id, context_id, sequence, user_message, status, model, created_at, instance_id)
         VALUES ('old-turn', 'c-old', 1, 'hi', 'streaming', 'm', 0, 'old')`,
    );
    const store = await PostgresConversationStore.open(url, { instanceTimeoutMs: 1000, heartbeatMs: 100 });
    try {
      expect(await query<{ version: number }>(url, 'SELECT MAX(version) AS version FROM schema_migrations')).toEqual([
        { version: POSTGRES_MIGRATIONS.length },
      ]);
      expect(await query(url, `SELECT timeout_ms FROM instances WHERE instance_id = 'old'`)).toEqual([{ timeout_ms: null }]);
      // Silent for 5 s, past this instance's 1 s: reaped once this one has beaten for a whole second.
      await expect.poll(async () => (await store.getTurn('old-turn'))!.status, { timeout: 5000, interval: 100 }).toBe('interrupted');
    } finally {
      await store.close();
    }
  });
});
