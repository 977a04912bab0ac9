import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBin, startTestPostgres, type TestPostgres } from './support/postgres-server.js';
import { hasPostgres } from './support/postgres.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { readSse } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

/** How long a request took, in ms, and what it got. */
async function timed<T>(request: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now();
  const result = await request();
  return { ms: performance.now() - started, result };
}

// This file stops and starts its own PostgreSQL under a running ChatWait.
describe.skipIf(!hasPostgres() || !findPostgresBin())('ChatWait while PostgreSQL is down', { timeout: 120_000 }, () => {
  let database: TestPostgres;
  let server: SpawnedServer;
  let url: string;
  beforeAll(async () => {
    database = await startTestPostgres(findPostgresBin()!);
    server = spawnServer({
      DATABASE_URL: database.adminUrl,
      DEMO_TOKENS_PER_SECOND: '40',
      DEMO_RESPONSE_TOKENS: '200',
      INSTANCE_TIMEOUT_SECONDS: '6',
    });
    url = await server.url;
  });
  afterAll(async () => {
    server?.child.kill('SIGKILL');
    await server?.exited;
    database?.stop();
  });

  it('says so fast, keeps flowing answers flowing and stores them once it is back, without a restart', async () => {
    const stream = readSse(`${url}/api/v1/chat/streaming?message=long&context_id=through-outage`);
    await expect.poll(async () => (await getJson(`${url}/api/v1/conversations/through-outage`)).status, { timeout: 10_000 }).toBe(200);
    database.halt();

    const ready = await timed(() => getJson(`${url}/api/v1/health/ready`));
    expect(ready.result.status).toBe(503);
    expect(ready.ms).toBeLessThan(2000);
    const health = await getJson(`${url}/api/v1/health`);
    expect(health.body.checks.store).toMatchObject({ status: 'error', detail: expect.stringContaining('PostgreSQL') });

    const send = await timed(() => postJson(`${url}/api/v1/chat/wait`, { message: 'during the outage', context_id: 'new-one' }));
    expect(send.result.status).toBe(503);
    expect(send.result.body).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE' });
    expect(send.result.headers.get('retry-after')).not.toBeNull();
    expect(send.ms).toBeLessThan(2000);
    const list = await timed(() => getJson(`${url}/api/v1/conversations`));
    expect(list.result).toMatchObject({ status: 503, body: { error_code: 'DEPENDENCY_UNAVAILABLE' } });
    expect(list.ms).toBeLessThan(2000);

    database.resume();
    const streamed = await stream;
    // The answer under way kept flowing to its reader through the outage.
    const last = streamed.events.at(-1)!.json;
    expect(last).toMatchObject({ type: 'end', finish_reason: 'stop' });

    await expect.poll(async () => (await getJson(`${url}/api/v1/health/ready`)).status, { timeout: 20_000, interval: 250 }).toBe(200);
    // Its outcome, refused while the database was down, is stored now; nothing was reaped by mistake.
    await expect
      .poll(async () => (await getJson(`${url}/api/v1/conversations/through-outage`)).body.turns?.[0], { timeout: 20_000, interval: 250 })
      .toMatchObject({ status: 'complete', answer: last.final_output });
    const after = await postJson(`${url}/api/v1/chat/wait`, { message: 'after the outage', context_id: 'new-one' });
    expect(after.status).toBe(200);
  });
});
