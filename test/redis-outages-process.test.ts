import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis, type LocalRedis } from '../scripts/local-redis.mjs';
import { startTcpProxy, type TcpProxy } from './support/cutting-proxy.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis } from './support/redis.js';
import { readSse, type SseEvent, type SseResult } from './support/sse-client.js';
import { spawnServer } from './support/spawn-server.js';
import { getJson, postJson } from './support/test-server.js';

// Redis and PostgreSQL going away under real ChatWait processes behind nginx (scale-out.md §7.9, §7.10,
// §7.12): readiness names what is down, what needs it fails fast with 503, answers generating on an
// instance go on for its own readers, and everything works again once the server is back, also empty.

/** Answers of about 160 tokens at 20 a second: eight seconds to act in. The limits are off, so only the replay log needs Redis. */
const ENV = {
  DEMO_TOKENS_PER_SECOND: '20',
  DEMO_RESPONSE_TOKENS: '160',
  RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
  MAX_STREAMS_PER_CLIENT: '0',
  MAX_GENERATING_TURNS_PER_CLIENT: '0',
  SHUTDOWN_DRAIN_SECONDS: '0',
  INSTANCE_TIMEOUT_SECONDS: '10',
  REDIS_WRITE_WINDOW_MS: '10',
};

/** What a client sees of events: exactly the `id:` and `data:` lines. */
const wire = (events: SseEvent[]) => events.map((event) => `id: ${event.id}\ndata: ${event.data}`);

/** Token indexes of events, in order. */
const indexes = (events: SseEvent[]) => events.filter((event) => event.json.type === 'token').map((event) => event.json.token_index);

/** Reads a stream to its end, keeping each event in `seen` as it comes (so a test can act while it flows). */
function follow(url: string, seen: SseEvent[], headers: Record<string, string> = {}): Promise<SseResult> {
  return readSse(url, { headers, until: (event) => (seen.push(event), false) });
}

/** Waits until `check` is true, trying every 20 ms, for up to 15 s. */
async function until(check: () => boolean): Promise<void> {
  await expect.poll(check, { timeout: 15_000, interval: 20 }).toBe(true);
}

/** How long `request` took, in milliseconds, with its result. */
async function timed<T>(request: () => Promise<T>): Promise<[T, number]> {
  const started = Date.now();
  const result = await request();
  return [result, Date.now() - started];
}

// A Redis command that hangs fails after 1 s; the margin is for this shared machine.
const FAST_MS = 3000;
/** Readiness answers 503 within 2 s, as the spec says (a dependency that hangs fails its check at the 1.8 s deadline). */
const READY_MS = 2000;

describe.skipIf(!hasRedis() || !hasPostgres() || !hasNginx())(
  'Redis outages under two instances behind nginx',
  { timeout: 150_000 },
  () => {
    const cleanups: (() => unknown)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A Redis of the test's own (so it can be stopped), a proxy in front of it, and two instances on it and on a fresh database. */
    async function start(): Promise<{ redis: LocalRedis; proxy: TcpProxy; cluster: InstancesBehindNginx; database: string }> {
      const redis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      const proxy = await startTcpProxy(`http://127.0.0.1:${redis.port}`);
      cleanups.push(() => proxy.close());
      const database = await createTestDatabase('outage');
      const cluster = await startInstancesBehindNginx(2, {
        ...ENV,
        DATABASE_URL: database,
        REDIS_URL: `redis://127.0.0.1:${new URL(proxy.url).port}`,
      });
      cleanups.push(() => cluster.stop());
      return { redis, proxy, cluster, database };
    }

    /** Readiness of every instance is 200 (polled: the connections come back by themselves). */
    async function allReady(cluster: InstancesBehindNginx): Promise<void> {
      for (const url of cluster.urls) {
        await expect.poll(async () => (await fetch(`${url}/api/v1/health/ready`)).status, { timeout: 15_000, interval: 200 }).toBe(200);
      }
    }

    /** A new answer through nginx, then a resume of it on the instance that did not produce it. */
    async function expectNewTurnsAndResumesWork(cluster: InstancesBehindNginx, context: string): Promise<void> {
      const sent = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'after the outage', context_id: `${context}-wait` });
      expect(sent.status).toBe(200);
      const [a, b] = cluster.urls as [string, string];
      const query = `message=after%20the%20outage&context_id=${context}-stream`;
      const head = await readSse(`${a}/api/v1/chat/streaming?${query}`, { until: (_, events) => events.length === 4 });
      const rest = await readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': head.events.at(-1)!.id! } });
      expect(rest.status).toBe(200);
      const end = rest.events.at(-1)!.json;
      expect(end).toMatchObject({ type: 'end', finish_reason: 'stop' });
      expect(indexes([...head.events, ...rest.events])).toEqual(Array.from({ length: end.token_count }, (_, index) => index));
    }

    it('reports each dependency with its backend; while Redis hangs, readiness names it and what needs it fails fast, the answer generating on A goes on, and its log reaches Redis whole once it answers again', async () => {
      const { proxy, cluster } = await start();
      const [a, b] = cluster.urls as [string, string];
      const health = await getJson(`${a}/health`);
      expect(health.body).toMatchObject({
        status: 'healthy',
        checks: {
          store: { status: 'ok', backend: 'postgres' },
          stream_log: { status: 'ok', backend: 'redis' },
          rate_limit: { status: 'ok', backend: 'redis' },
          model: { status: 'ok' },
        },
      });

      const query = 'message=a%20long%20answer&context_id=hung';
      const onA: SseEvent[] = [];
      const reading = follow(`${a}/api/v1/chat/streaming?${query}`, onA);
      await until(() => onA.length >= 6);
      const turnId = onA[0]!.json.turn_id as string;
      proxy.hung = true;
      try {
        // A's answer, still generating, resumed or cancelled on B, which does not hold it: 503, fast.
        const [resume, resumeMs] = await timed(() =>
          readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': onA[3]!.id! } }),
        );
        expect(resume.status).toBe(503);
        expect(resume.error).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
        expect(resumeMs).toBeLessThan(FAST_MS);
        const cancel = await postJson(`${b}/api/v1/chat/turns/${turnId}/cancel`, {});
        expect(cancel.status).toBe(503);
        expect(cancel.body.error_code).toBe('DEPENDENCY_UNAVAILABLE');

        const [ready, readyMs] = await timed(() => getJson(`${a}/api/v1/health/ready`));
        expect(ready.status).toBe(503);
        expect(ready.body).toMatchObject({
          status: 'not_ready',
          reason: 'stream_log, rate_limit failing',
          checks: { store: { status: 'ok' }, stream_log: { status: 'error', backend: 'redis', detail: expect.stringContaining('Redis') } },
        });
        expect(readyMs).toBeLessThan(READY_MS);
        const degraded = await getJson(`${b}/health`);
        expect(degraded.body).toMatchObject({
          status: 'degraded',
          checks: { stream_log: { status: 'error' }, rate_limit: { status: 'error' } },
        });

        // A new message through the load balancer: refused (fail closed), in the documented error format.
        const [send, sendMs] = await timed(() =>
          postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'during the outage', context_id: 'hung-new' }),
        );
        expect(send.status).toBe(503);
        expect(send.body).toEqual({
          error_code: 'DEPENDENCY_UNAVAILABLE',
          message: expect.stringContaining('Redis'),
          request_id: expect.any(String),
          retryable: true,
        });
        expect(send.headers.get('retry-after')).toBe('2');
        expect(sendMs).toBeLessThan(FAST_MS);
        // A's own reader gets the whole answer while Redis still hangs.
        const local = await reading;
        const end = local.events.at(-1)!.json;
        expect(end).toMatchObject({ type: 'end', finish_reason: 'stop' });
        expect(indexes(local.events)).toEqual(Array.from({ length: end.token_count }, (_, index) => index));
        // Ended, it is read on B from the store, Redis or not.
        const fromStore = await readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': onA[3]!.id! } });
        expect(fromStore.events.slice(1).map((event) => event.json)).toMatchObject([
          { type: 'resync', final_output: end.final_output },
          { type: 'end', final_output: end.final_output },
        ]);
        expect(proxy.hung).toBe(true);
      } finally {
        proxy.hung = false;
      }
      await allReady(cluster);
      // A's flushes, retried while Redis hung, left every event in its log once: B replays it as A's reader got it.
      const replayed = await readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': `${turnId}/start` } });
      expect(replayed.status).toBe(200);
      expect(wire(replayed.events.slice(1))).toEqual(wire(onA.slice(1)));
      await expectNewTurnsAndResumesWork(cluster, 'hung');
    });

    it('while Redis is stopped, then back empty: readiness names it, a reader on B gets resync and the stored end, A does not write the lost log again, and everything works without a restart', async () => {
      const { redis, cluster } = await start();
      const [a, b] = cluster.urls as [string, string];
      const query = 'message=a%20long%20answer&context_id=restarted';
      const onA: SseEvent[] = [];
      const producing = follow(`${a}/api/v1/chat/streaming?${query}`, onA);
      await until(() => onA.length >= 4);
      const turnId = onA[0]!.json.turn_id as string;
      const onB: SseEvent[] = [];
      const remote = follow(`${b}/api/v1/chat/streaming?${query}`, onB, { 'Last-Event-ID': onA[2]!.id! });
      await until(() => onB.length >= 4);

      redis.stop();
      const [ready, readyMs] = await timed(() => getJson(`${a}/api/v1/health/ready`));
      expect(ready.status).toBe(503);
      expect(ready.body.reason).toBe('stream_log, rate_limit failing');
      expect(readyMs).toBeLessThan(READY_MS);
      const send = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'during the outage', context_id: 'restarted-new' });
      expect(send.status).toBe(503);
      expect(send.body.error_code).toBe('DEPENDENCY_UNAVAILABLE');

      // Back on the same port with nothing in it, as a Redis without persistence restarts.
      const again = await startLocalRedis(undefined, { port: redis.port });
      cleanups.push(() => again.stop());
      // New readers on B of the turn whose log vanished, while A still generates it: a fresh resume by event id and
      // the same message sent again get its stored answer once it ends (not 409 CONVERSATION_BUSY).
      await expect.poll(async () => (await fetch(`${b}/api/v1/health/ready`)).status, { timeout: 15_000, interval: 100 }).toBe(200);
      expect(onA.at(-1)!.json.type).toBe('token');
      const fresh = readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': onA[2]!.id! } });
      const resent = postJson(`${b}/api/v1/chat/wait`, { message: 'a long answer', context_id: 'restarted' });
      const local = await producing;
      const end = local.events.at(-1)!.json;
      expect(end).toMatchObject({ type: 'end', finish_reason: 'stop' });
      expect(indexes(local.events)).toEqual(Array.from({ length: end.token_count }, (_, index) => index));
      // B's reader lost the log mid-answer: it gets resync with the stored answer, then the end, never silence.
      const followed = await remote;
      expect(followed.events.slice(-2).map((event) => event.json)).toMatchObject([
        { type: 'resync', turn_id: turnId, final_output: end.final_output, token_count: end.token_count },
        { type: 'end', finish_reason: 'stop', final_output: end.final_output },
      ]);
      expect(followed.events.at(-2)!.id).toBe(`${turnId}/resync`);
      const resumed = await fresh;
      expect([resumed.status, resumed.error]).toEqual([200, undefined]);
      expect(resumed.events.slice(-2).map((event) => event.json)).toMatchObject([
        { type: 'resync', turn_id: turnId, final_output: end.final_output },
        { type: 'end', finish_reason: 'stop', final_output: end.final_output },
      ]);
      expect((await resent).body).toMatchObject({ turn_id: turnId, message: end.final_output, finish_reason: 'stop' });

      // The producer did not write a partial log into the empty Redis.
      const client = new Redis(again.url);
      cleanups.push(() => client.disconnect());
      expect(await client.exists(`cw:t:{${turnId}}:log`, `cw:t:{${turnId}}:meta`)).toBe(0);
      await allReady(cluster);
      await expectNewTurnsAndResumesWork(cluster, 'restarted');
    });

    it('while PostgreSQL is down and Redis up, readiness names the store alone and a new message fails fast with 503, and it recovers by itself', async () => {
      const database = new URL(await createTestDatabase('outagepg'));
      const proxy = await startTcpProxy(`http://${database.host}`);
      cleanups.push(() => proxy.close());
      const redis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      database.host = new URL(proxy.url).host;
      const server = spawnServer({ ...ENV, DATABASE_URL: database.href, REDIS_URL: redis.url });
      cleanups.push(async () => {
        server.child.kill('SIGKILL');
        await server.exited;
      });
      const url = await server.url;
      expect((await getJson(`${url}/health`)).body.checks.store).toEqual({ status: 'ok', backend: 'postgres' });

      proxy.blocked = true;
      proxy.cut();
      try {
        const [ready, readyMs] = await timed(() => getJson(`${url}/api/v1/health/ready`));
        expect(ready.status).toBe(503);
        expect(ready.body).toMatchObject({
          reason: 'store failing',
          checks: { store: { status: 'error', backend: 'postgres' }, stream_log: { status: 'ok' }, rate_limit: { status: 'ok' } },
        });
        expect(readyMs).toBeLessThan(READY_MS);
        const send = await postJson(`${url}/api/v1/chat/wait`, { message: 'during the outage' });
        expect(send.status).toBe(503);
        expect(send.body).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
      } finally {
        proxy.blocked = false;
      }
      await expect.poll(async () => (await fetch(`${url}/api/v1/health/ready`)).status, { timeout: 15_000, interval: 200 }).toBe(200);
      expect((await postJson(`${url}/api/v1/chat/wait`, { message: 'after the outage' })).status).toBe(200);
    });
  },
);
