import { afterAll, beforeAll } from 'vitest';
import { findPostgresBin, startTestPostgres, type TestPostgres } from './postgres-server.js';
import { spawnServer, type SpawnedServer } from './spawn-server.js';

/** A ChatWait process on a PostgreSQL server of its own; the fields are set once the file's beforeAll ran. */
export interface OwnPostgresServer {
  database: TestPostgres;
  server: SpawnedServer;
  url: string;
}

/**
 * Starts, for the calling describe block, a PostgreSQL server of its own and one ChatWait process on it
 * (the demo model at 40 tokens/s, 200 tokens: five seconds of answer to stop the database in), and stops
 * both afterwards. For tests that stop and start the database under a running ChatWait.
 */
export function serverOnOwnPostgres(): OwnPostgresServer {
  const own = {} as OwnPostgresServer;
  beforeAll(async () => {
    own.database = await startTestPostgres(findPostgresBin()!);
    own.server = spawnServer({
      DATABASE_URL: own.database.adminUrl,
      DEMO_TOKENS_PER_SECOND: '40',
      DEMO_RESPONSE_TOKENS: '200',
      INSTANCE_TIMEOUT_SECONDS: '10',
    });
    own.url = await own.server.url;
  });
  afterAll(async () => {
    own.server?.child.kill('SIGKILL');
    await own.server?.exited;
    own.database?.stop();
  });
  return own;
}
