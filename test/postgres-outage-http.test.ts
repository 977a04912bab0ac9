import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPostgresBin } from './support/postgres-server.js';
import { serverOnOwnPostgres } from './support/own-postgres.js';
import { startTcpProxy, type TcpProxy } from './support/cutting-proxy.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
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
  const own = serverOnOwnPostgres();

  it('says so fast, keeps flowing answers flowing and stores them once it is back, without a restart', async () => {
    const stream = readSse(`${own.url}/api/v1/chat/streaming?message=long&context_id=through-outage`);
    await expect.poll(async () => (await getJson(`${own.url}/api/v1/conversations/through-outage`)).status, { timeout: 10_000 }).toBe(200);
    own.database.halt();

    const ready = await timed(() => getJson(`${own.url}/api/v1/health/ready`));
    expect(ready.result.status).toBe(503);
    expect(ready.ms).toBeLessThan(2000);
    const health = await getJson(`${own.url}/api/v1/health`);
    expect(health.body.checks.store).toMatchObject({ status: 'error', detail: expect.stringContaining('PostgreSQL') });

    const send = await timed(() => postJson(`${own.url}/api/v1/chat/wait`, { message: 'during the outage', context_id: 'new-one' }));
    expect(send.result.status).toBe(503);
    expect(send.result.body).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE' });
    expect(send.result.headers.get('retry-after')).not.toBeNull();
    expect(send.ms).toBeLessThan(2000);
    const list = await timed(() => getJson(`${own.url}/api/v1/conversations`));
    expect(list.result).toMatchObject({ status: 503, body: { error_code: 'DEPENDENCY_UNAVAILABLE' } });
    expect(list.ms).toBeLessThan(2000);

    own.database.resume();
    const streamed = await stream;
    // The answer under way kept flowing to its reader through the outage.
    const last = streamed.events.at(-1)!.json;
    expect(last).toMatchObject({ type: 'end', finish_reason: 'stop' });

    await expect.poll(async () => (await getJson(`${own.url}/api/v1/health/ready`)).status, { timeout: 20_000, interval: 250 }).toBe(200);
    // Its outcome, refused while the database was down, is stored now; nothing was reaped by mistake.
    await expect
      .poll(async () => (await getJson(`${own.url}/api/v1/conversations/through-outage`)).body.turns?.[0], {
        timeout: 20_000,
        interval: 250,
      })
      .toMatchObject({ status: 'complete', answer: last.final_output });
    const after = await postJson(`${own.url}/api/v1/chat/wait`, { message: 'after the outage', context_id: 'new-one' });
    expect(after.status).toBe(200);
  });
});

// Between ChatWait and the run's PostgreSQL, a proxy that can hang: connections are accepted, nothing
// answers, as with a stopped (SIGSTOP) server or a network that drops packets. No error ever comes back.
describe.skipIf(!hasPostgres())('ChatWait while PostgreSQL hangs', { timeout: 120_000 }, () => {
  let proxy: TcpProxy;
  let server: SpawnedServer;
  let url: string;
  beforeAll(async () => {
    const database = new URL(await createTestDatabase('hung'));
    proxy = await startTcpProxy(`http://${database.host}`);
    database.host = new URL(proxy.url).host;
    server = spawnServer({ DATABASE_URL: database.href, INSTANCE_TIMEOUT_SECONDS: '10' });
    url = await server.url;
  });
  afterAll(async () => {
    server?.child.kill('SIGKILL');
    await server?.exited;
    await proxy?.close();
  });

  it('answers 503 DEPENDENCY_UNAVAILABLE within 2 s, readiness names the store, and it works again once the database answers', async () => {
    expect((await postJson(`${url}/api/v1/chat/wait`, { message: 'before', context_id: 'kept' })).status).toBe(200);
    proxy.hung = true;
    // Twice: first on the pool's open connections (their statements hang), then on new ones (connecting hangs).
    for (const round of [1, 2]) {
      const [send, read, ready] = await Promise.all([
        timed(() => postJson(`${url}/api/v1/chat/wait`, { message: `during ${round}`, context_id: `new-${round}` })),
        timed(() => getJson(`${url}/api/v1/conversations/kept`)),
        timed(() => getJson(`${url}/api/v1/health/ready`)),
      ]);
      expect(send.result).toMatchObject({ status: 503, body: { error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true } });
      expect(send.result.headers.get('retry-after')).not.toBeNull();
      expect(read.result).toMatchObject({ status: 503, body: { error_code: 'DEPENDENCY_UNAVAILABLE' } });
      expect(ready.result).toMatchObject({
        status: 503,
        body: {
          reason: expect.stringContaining('store'),
          checks: { store: { status: 'error', detail: expect.stringContaining('PostgreSQL') } },
        },
      });
      // The issue asks for 2 s; the margin is for this shared machine's scheduling, not for the server.
      for (const { ms } of [send, read, ready]) expect(ms).toBeLessThan(2500);
    }

    proxy.hung = false;
    await expect.poll(async () => (await getJson(`${url}/api/v1/health/ready`)).status, { timeout: 20_000, interval: 250 }).toBe(200);
    expect((await postJson(`${url}/api/v1/chat/wait`, { message: 'after', context_id: 'kept' })).status).toBe(200);
    const kept = await getJson(`${url}/api/v1/conversations/kept`);
    expect(kept.body.turns.map((turn: { status: string }) => turn.status)).toEqual(['complete', 'complete']);
  });
});
