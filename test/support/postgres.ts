import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

/** Whether this run has a PostgreSQL; when it has none (a developer's machine without the package) its tests skip, saying so once. */
export function hasPostgres(): boolean {
  const available = inject('postgresAdminUrl') !== '';
  if (!available && !warned) {
    warned = true;
    console.warn("SKIPPED: PostgreSQL tests (install Debian's postgresql package, or set CHATWAIT_TEST_POSTGRES_URL); CI runs them.");
  }
  return available;
}
let warned = false;

/** Creates an empty database in the run's PostgreSQL and returns its URL. */
export async function createTestDatabase(prefix = 't'): Promise<string> {
  const admin = new URL(inject('postgresAdminUrl'));
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin.href });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  admin.pathname = `/${name}`;
  return admin.href;
}
