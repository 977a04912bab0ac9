import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { ConversationStore } from '../../src/store/conversation-store.js';
import { openConversationStore } from '../../src/store/create-store.js';
import { createTestDatabase, hasPostgres } from './postgres.js';

/**
 * INSTANCE_TIMEOUT_SECONDS for the spawned servers of these suites on PostgreSQL: short, so a killed
 * instance's turns are reaped within a test, yet not below 10 s, the safe minimum for instances under load (see MIN_INSTANCE_TIMEOUT_SECONDS).
 */
export const TEST_INSTANCE_TIMEOUT_SECONDS = 10;

/** Whether this file runs in the postgres project (CHATWAIT_TEST_STORE=postgres) with a PostgreSQL to run on. */
export function onPostgres(): boolean {
  return process.env.CHATWAIT_TEST_STORE === 'postgres' && hasPostgres();
}

/**
 * The DATABASE_URL a suite of spawned servers runs on: a new PostgreSQL database in the postgres project,
 * otherwise what the suite names (`sqlite` for a new file, or a URL as is).
 */
export async function processDatabaseUrl(otherwise: 'sqlite' | 'memory'): Promise<string> {
  if (onPostgres()) return createTestDatabase('process');
  return otherwise === 'sqlite' ? `sqlite:${join(mkdtempSync(join(tmpdir(), 'chatwait-process-db-')), 'chat.db')}` : otherwise;
}

/** Opens the store a spawned server used, to read what it left (on PostgreSQL as an admin tool: not one of the instances). */
export function openForReading(databaseUrl: string): Promise<ConversationStore> {
  return openConversationStore(databaseUrl, { lease: false });
}

/** The ids in a PostgreSQL database's instances table (the processes that count as alive, or died without leaving). */
export async function instanceIds(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<{ instance_id: string }>('SELECT instance_id FROM instances ORDER BY instance_id')).rows.map(
      (row) => row.instance_id,
    );
  } finally {
    await client.end();
  }
}
