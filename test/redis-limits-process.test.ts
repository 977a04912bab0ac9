import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startTcpProxy } from './support/cutting-proxy.js';
import { startInstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { hasRedis } from './support/redis.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { postJson } from './support/test-server.js';

// Real ChatWait processes sharing one Redis, as behind a load balancer: the limits hold across them.
// The limits do not need a shared conversation store, so each process keeps its own (in memory), and
// each test its own Redis, so no other test's client (all are 127.0.0.1) shares its buckets.

const ENV = { SHUTDOWN_DRAIN_SECONDS: '0', DEMO_TOKENS_PER_SECOND: '0' };

describe.skipIf(!hasRedis())('limits shared by ChatWait processes on one Redis', { timeout: 60_000 }, () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(count: number, env: Record<string, string>): Promise<{ servers: SpawnedServer[]; urls: string[] }> {
    const servers = Array.from({ length: count }, () => spawnServer({ ...ENV, ...env }));
    for (const server of servers) {
      cleanups.push(async () => {
        server.child.kill('SIGKILL');
        await server.exited;
      });
    }
    return { servers, urls: await Promise.all(servers.map((server) => server.url)) };
  }

  it('lets exactly the burst through when burst + 1 messages alternate between two instances', async () => {
    // A fresh Redis: the run's shared one may hold this client's bucket from another test.
    const redis = await startLocalRedis();
    cleanups.push(() => redis.stop());
    const { urls } = await start(2, { REDIS_URL: redis.url, RATE_LIMIT_REQUESTS_PER_MINUTE: '6', RATE_LIMIT_BURST: '3' });
    const responses = [];
    for (let index = 0; index < 4; index++) {
      responses.push(await postJson(`${urls[index % 2]}/api/v1/chat/wait`, { message: `shared bucket ${index}, 3 tokens` }));
    }
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200, 429]);
    const refused = responses[3]!;
    expect(refused.body).toMatchObject({ error_code: 'RATE_LIMITED', retryable: true });
    expect(refused.headers.get('ratelimit-limit')).toBe('6');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('ratelimit-policy')).toBe('6;w=60;burst=3');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it("frees a killed instance's open streams and generating turns after the lease time, for the other instance", async () => {
    const redis = await startLocalRedis();
    cleanups.push(() => redis.stop());
    const { servers, urls } = await start(2, {
      REDIS_URL: redis.url,
      REDIS_LEASE_SECONDS: '3',
      MAX_STREAMS_PER_CLIENT: '2',
      MAX_GENERATING_TURNS_PER_CLIENT: '2',
      // Slow, long answers: the two streams on A are still generating when A is killed.
      DEMO_TOKENS_PER_SECOND: '5',
      DEMO_RESPONSE_TOKENS: '1000',
    });
    const [a, b] = urls as [string, string];
    const stream = (url: string, context: string) =>
      fetch(`${url}/api/v1/chat/streaming?message=${encodeURIComponent('a long answer')}&context_id=${context}`);
    const held = await Promise.all([stream(a, 'lease-1'), stream(a, 'lease-2')]);
    expect(held.map((response) => response.status)).toEqual([200, 200]);

    const third = await stream(b, 'lease-3');
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({ error_code: 'RATE_LIMITED', message: expect.stringMatching(/at most 2/) });
    const waiting = await postJson(`${b}/api/v1/chat/wait`, { message: 'one more', context_id: 'lease-4' });
    expect(waiting.status).toBe(429);
    expect(waiting.body.error_code).toBe('TOO_MANY_GENERATING_TURNS');

    servers[0]!.child.kill('SIGKILL');
    await servers[0]!.exited;
    // Its leases outlive it for up to REDIS_LEASE_SECONDS, then free themselves: no restart, no release.
    expect((await stream(b, 'lease-5')).status).toBe(429);
    await expect
      .poll(
        async () => {
          const response = await stream(b, 'lease-6');
          await response.body?.cancel();
          return response.status;
        },
        { timeout: 10_000, interval: 250 },
      )
      .toBe(200);
  });

  it('answers 503 DEPENDENCY_UNAVAILABLE on limited routes while Redis is gone or hangs, and recovers by itself when it is back', async () => {
    const redis = await startLocalRedis();
    cleanups.push(() => redis.stop());
    const proxy = await startTcpProxy(`http://127.0.0.1:${redis.port}`);
    cleanups.push(() => proxy.close());
    const { urls } = await start(1, {
      REDIS_URL: `redis://127.0.0.1:${new URL(proxy.url).port}`,
      RATE_LIMIT_REQUESTS_PER_MINUTE: '6000',
      RATE_LIMIT_BURST: '100',
    });
    const [url] = urls as [string];
    expect((await postJson(`${url}/api/v1/chat/wait`, { message: 'before, 3 tokens' })).status).toBe(200);

    proxy.blocked = true;
    proxy.cut();
    const started = Date.now();
    const send = await postJson(`${url}/api/v1/chat/wait`, { message: 'during, 3 tokens' });
    expect(send.status).toBe(503);
    expect(send.body).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    expect(send.headers.get('retry-after')).toBe('2');
    const list = await fetch(`${url}/api/v1/conversations`);
    expect(list.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(3000);
    // Liveness is not limited: the process itself is fine.
    expect((await fetch(`${url}/api/v1/health/live`)).status).toBe(200);

    proxy.blocked = false;
    await expect
      .poll(async () => (await postJson(`${url}/api/v1/chat/wait`, { message: 'back, 3 tokens' })).status, {
        timeout: 15_000,
        interval: 250,
      })
      .toBe(200);

    // Hung (the server stopped, its connections open): each limited request gives up after the 1 s command timeout.
    process.kill(redis.pid!, 'SIGSTOP');
    try {
      const hungAt = Date.now();
      const hung = await postJson(`${url}/api/v1/chat/wait`, { message: 'hung, 3 tokens' });
      expect(hung.status).toBe(503);
      expect(hung.body.error_code).toBe('DEPENDENCY_UNAVAILABLE');
      expect(Date.now() - hungAt).toBeLessThan(3000);
    } finally {
      process.kill(redis.pid!, 'SIGCONT');
    }
    await expect
      .poll(async () => (await postJson(`${url}/api/v1/chat/wait`, { message: 'after, 3 tokens' })).status, {
        timeout: 15_000,
        interval: 250,
      })
      .toBe(200);
    expect((await fetch(`${url}/api/v1/conversations`)).status).toBe(200);
  });
});

/** A metric's value in Prometheus's text format (0 when it has no sample yet). */
async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

describe.skipIf(!hasRedis() || !hasNginx())('the open-stream cap across two instances behind nginx', { timeout: 60_000 }, () => {
  it('holds for one client whichever instance nginx sends each stream to, and a closed stream frees one place, whichever instance gets the next', async () => {
    const redis = await startLocalRedis();
    const cluster = await startInstancesBehindNginx(2, {
      ...ENV,
      REDIS_URL: redis.url,
      TRUST_PROXY: 'true',
      MAX_STREAMS_PER_CLIENT: '3',
      MAX_GENERATING_TURNS_PER_CLIENT: '0',
      // Slow, long answers: the streams stay open until this test closes them.
      DEMO_TOKENS_PER_SECOND: '5',
      DEMO_RESPONSE_TOKENS: '1000',
    });
    const open: AbortController[] = [];
    try {
      const stream = async (context: string) => {
        const controller = new AbortController();
        const url = `${cluster.url}/api/v1/chat/streaming?message=${encodeURIComponent('a long answer')}&context_id=${context}`;
        const response = await fetch(url, { signal: controller.signal });
        if (response.status === 200) open.push(controller);
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const body: any = response.status === 200 ? undefined : await response.json();
        return { status: response.status, body };
      };
      for (let index = 0; index < 3; index++) expect((await stream(`cap-${index}`)).status).toBe(200);
      // Round robin: both instances hold some of the three.
      const held = await Promise.all(cluster.urls.map((url) => metric(url, 'chatwait_open_streams')));
      expect(held.reduce((sum, count) => sum + count, 0)).toBe(3);
      expect(held.every((count) => count > 0)).toBe(true);

      // One more, twice: nginx sends one to each instance, and each refuses it.
      for (let index = 0; index < 2; index++) {
        const refused = await stream(`over-${index}`);
        expect(refused.status).toBe(429);
        expect(refused.body).toMatchObject({ error_code: 'RATE_LIMITED', message: expect.stringMatching(/at most 3/) });
      }
      const refusedBy = await Promise.all(cluster.urls.map((url) => metric(url, 'chatwait_rate_limited_total{kind="streams"}')));
      expect(refusedBy).toEqual([1, 1]);

      // A client closing one stream frees its lease at once, for whichever instance gets the next: one place, no more.
      open.shift()!.abort();
      await expect.poll(async () => (await stream(`again-${Date.now()}`)).status, { timeout: 10_000, interval: 100 }).toBe(200);
      expect((await stream('over-again')).status).toBe(429);
    } finally {
      for (const controller of open) controller.abort();
      await cluster.stop();
      await redis.stop();
    }
  });
});
