import { connect, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startTcpProxy } from './support/cutting-proxy.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis } from './support/redis.js';
import { readSse, tokensOf, type SseEvent, type SseResult } from './support/sse-client.js';
import { getJson } from './support/test-server.js';

// Partial failures under two real instances behind nginx (scale-out.md §7.11, §7.12, §7.16): one
// instance cut off from Redis, a reader on the other that never reads, PostgreSQL away for longer
// than the instances' timeout. Requests that must reach one instance go to its own URL.

const TIMEOUT_SECONDS = 10;

/** The limits are off, so only the replay log needs Redis. */
const ENV = {
  RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
  MAX_STREAMS_PER_CLIENT: '0',
  MAX_GENERATING_TURNS_PER_CLIENT: '0',
  SHUTDOWN_DRAIN_SECONDS: '0',
  INSTANCE_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS),
  REDIS_WRITE_WINDOW_MS: '10',
};

/** Token indexes of events, in order. */
const indexes = (events: SseEvent[]) => events.filter((event) => event.json.type === 'token').map((event) => event.json.token_index);

/** 0, 1, … count - 1. */
const upTo = (count: number) => Array.from({ length: count }, (_, index) => index);

/** Reads a stream to its end, keeping each event in `seen` as it comes (so a test can act while it flows). */
function follow(url: string, seen: SseEvent[], headers: Record<string, string> = {}): Promise<SseResult> {
  return readSse(url, { headers, until: (event) => (seen.push(event), false) });
}

/** Waits until `check` is true, trying every 20 ms, for up to 15 s. */
async function until(check: () => boolean): Promise<void> {
  await expect.poll(check, { timeout: 15_000, interval: 20 }).toBe(true);
}

/** The number of SSE responses an instance has open (its metric). */
async function openStreams(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^chatwait_open_streams (\d+)/m.exec(text)![1]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!hasRedis() || !hasPostgres() || !hasNginx())(
  'partial failures under two instances behind nginx',
  { timeout: 100_000 },
  () => {
    const cleanups: (() => unknown)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** Two instances on a fresh database and the given Redis, stopped after the test. */
    async function start(env: Record<string, string>): Promise<InstancesBehindNginx> {
      const cluster = await startInstancesBehindNginx(2, { ...ENV, DATABASE_URL: await createTestDatabase('partition'), ...env });
      cleanups.push(() => cluster.stop());
      return cluster;
    }

    async function storedTurn(url: string, contextId: string, turnId: string) {
      const { body } = await getJson(`${url}/api/v1/conversations/${contextId}`);
      return (body.turns as { turn_id: string; status: string; answer: string }[]).find((turn) => turn.turn_id === turnId)!;
    }

    it("§7.12: A alone cut off from Redis keeps answering its own readers; after the heal its log is whole and once in Redis, and B's readers get every token once", async () => {
      const redis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      const proxy = await startTcpProxy(`http://127.0.0.1:${redis.port}`);
      cleanups.push(() => proxy.close());
      // B reaches Redis directly; A (restarted on its port) only through the proxy.
      const cluster = await start({ REDIS_URL: redis.url, DEMO_TOKENS_PER_SECOND: '40' });
      await cluster.restart(0, { REDIS_URL: `redis://127.0.0.1:${new URL(proxy.url).port}` });
      const [a, b] = cluster.urls as [string, string];

      // Two answers on A, each followed on B: the short one ends while A is cut off, the long one after the heal.
      const turns = ['answer in 80 tokens', 'answer in 400 tokens'].map((message, index) => {
        const query = `message=${encodeURIComponent(message)}&context_id=partition-${index}`;
        const onA: SseEvent[] = [];
        return {
          query,
          onA,
          local: follow(`${a}/api/v1/chat/streaming?${query}`, onA),
          onB: [] as SseEvent[],
          remote: undefined as Promise<SseResult> | undefined,
        };
      });
      for (const turn of turns) {
        await until(() => turn.onA.length >= 4);
        turn.remote = follow(`${b}/api/v1/chat/streaming?${turn.query}`, turn.onB, { 'Last-Event-ID': turn.onA[2]!.id! });
      }
      await until(() => turns.every((turn) => turn.onB.length >= 2));

      // Hung, not refused: A's flushes time out and are retried while what it sent is held, then let through at the heal.
      proxy.hung = true;
      try {
        const short = await turns[0]!.local;
        expect(short.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
        expect(indexes(short.events)).toEqual(upTo(short.events.at(-1)!.json.token_count));
        await sleep(1500);
        expect(proxy.hung).toBe(true);
      } finally {
        proxy.hung = false;
      }

      const client = new Redis(redis.url);
      cleanups.push(() => client.disconnect());
      for (const [index, turn] of turns.entries()) {
        const local = await turn.local;
        const end = local.events.at(-1)!.json;
        expect(end, `turn ${index} on A`).toMatchObject({ type: 'end', finish_reason: 'stop' });
        expect(indexes(local.events)).toEqual(upTo(end.token_count));
        // B's reader: from where it started to the end, exactly what A's reader got after that point.
        const remote = await turn.remote!;
        expect(remote.status).toBe(200);
        expect(
          remote.events.slice(1).map((event) => `${event.id} ${event.data}`),
          `turn ${index} on B`,
        ).toEqual(local.events.slice(3).map((event) => `${event.id} ${event.data}`));
        // Redis holds the whole log once (every event after `start`, which each response makes itself): ids
        // 0-1..0-N without a gap, one final entry (the last), A's events in order.
        const turnId = local.events[0]!.json.turn_id as string;
        const logged = local.events.slice(1);
        const entries = (await client.xrange(`cw:t:{${turnId}}:log`, '-', '+')) as [string, string[]][];
        expect(entries.map(([id]) => id)).toEqual(logged.map((_, position) => `0-${position + 1}`));
        expect(entries.flatMap(([, fields], position) => (fields.includes('f') ? [position] : []))).toEqual([entries.length - 1]);
        expect(entries.map(([, fields]) => fields[fields.indexOf('d') + 1])).toEqual(logged.map((event) => event.data));
        const stored = await storedTurn(b, local.events[0]!.json.context_id, turnId);
        expect(stored).toMatchObject({ status: 'complete', answer: end.final_output });
      }
    });

    it('§7.16: a reader on B that reads nothing slows neither A nor the other readers, and B cuts it off', async () => {
      const redis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      const cluster = await start({
        REDIS_URL: redis.url,
        DEMO_TOKENS_PER_SECOND: '0',
        MAX_OUTPUT_TOKENS: '30000',
        SSE_MAX_BUFFER_BYTES: '262144',
        SSE_STALL_TIMEOUT_SECONDS: '2',
      });
      const [a, b] = cluster.urls as [string, string];
      const path = `/api/v1/chat/streaming?message=${encodeURIComponent('a very long answer, 30000 tokens')}&context_id=slow`;
      const onA: SseEvent[] = [];
      const local = follow(`${a}${path}`, onA);
      await until(() => onA.length >= 1);
      const turnId = onA[0]!.json.turn_id as string;

      // The slow reader: asks B for the whole turn, then never reads what comes.
      const slow: Socket = connect(Number(new URL(b).port), '127.0.0.1');
      cleanups.push(() => slow.destroy());
      slow.pause();
      slow.on('error', () => {});
      slow.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${turnId}/start\r\n\r\n`);
      const normal = readSse(`${b}${path}`, { headers: { 'Last-Event-ID': `${turnId}/start` } });

      const [mine, theirs] = await Promise.all([local, normal]);
      const end = mine.events.at(-1)!.json;
      expect(end).toMatchObject({ type: 'end', finish_reason: 'stop' });
      expect(end.token_count).toBeGreaterThanOrEqual(30_000);
      expect(indexes(mine.events)).toEqual(upTo(end.token_count));
      expect(tokensOf(mine.events).join('')).toBe(end.final_output);
      expect(theirs.events.slice(1).map((event) => `${event.id} ${event.data}`)).toEqual(
        mine.events.slice(1).map((event) => `${event.id} ${event.data}`),
      );
      expect((await storedTurn(b, 'slow', turnId)).status).toBe('complete');

      // B stopped writing to the full socket and, after the stall timeout, cut it off: what it holds ends short of `end`.
      await expect.poll(() => openStreams(b), { timeout: 20_000, interval: 250 }).toBe(0);
      const received = await new Promise<string>((resolve) => {
        let text = '';
        slow.setEncoding('utf8');
        slow.on('data', (chunk: string) => (text += chunk));
        slow.on('close', () => resolve(text));
        slow.resume();
      });
      expect(received.startsWith('HTTP/1.1 200')).toBe(true);
      expect(received).toContain('"token_index":0,');
      expect(received).not.toContain('"type":"end"');
    });

    it('§7.11: after PostgreSQL is away from both for longer than the timeout, B does not reap the turn A is still generating', async () => {
      const redis = await startLocalRedis();
      cleanups.push(() => redis.stop());
      const database = new URL(await createTestDatabase('pgpartition'));
      // One proxy per instance, so B can come back first: it must not take A's stale heartbeat for a death.
      const proxies = await Promise.all([startTcpProxy(`http://${database.host}`), startTcpProxy(`http://${database.host}`)]);
      for (const proxy of proxies) cleanups.push(() => proxy.close());
      const through = (index: number) => Object.assign(new URL(database.href), { host: new URL(proxies[index]!.url).host }).href;
      const cluster = await startInstancesBehindNginx(2, {
        ...ENV,
        REDIS_URL: redis.url,
        DATABASE_URL: through(1),
        DEMO_TOKENS_PER_SECOND: '40',
      });
      cleanups.push(() => cluster.stop());
      await cluster.restart(0, { DATABASE_URL: through(0) });
      const [a, b] = cluster.urls as [string, string];

      const onA: SseEvent[] = [];
      const local = follow(`${a}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 1400 tokens')}&context_id=long`, onA);
      await until(() => onA.length >= 4);
      const turnId = onA[0]!.json.turn_id as string;
      for (const proxy of proxies) {
        proxy.blocked = true;
        proxy.cut();
      }
      const before = onA.length;
      await sleep((TIMEOUT_SECONDS + 1) * 1000);
      // A generated on through the outage.
      expect(onA.length).toBeGreaterThan(before + 100);
      proxies[1]!.blocked = false;
      const healedB = Date.now();
      try {
        await expect.poll(async () => (await fetch(`${b}/api/v1/health/ready`)).status, { timeout: 10_000, interval: 200 }).toBe(200);
        await sleep(2000);
      } finally {
        for (const proxy of proxies) proxy.blocked = false;
      }
      const result = await local;
      const end = result.events.at(-1)!.json;
      expect(end).toMatchObject({ type: 'end', finish_reason: 'stop' });
      // The turn ran past the first moment B's reaper could have judged A (a whole timeout connected, then a beat).
      expect(Date.now() - healedB).toBeGreaterThan((TIMEOUT_SECONDS + TIMEOUT_SECONDS / 3) * 1000);
      expect(indexes(result.events)).toEqual(upTo(end.token_count));
      await expect.poll(async () => (await storedTurn(b, 'long', turnId)).status, { timeout: 10_000, interval: 200 }).toBe('complete');
      expect((await storedTurn(a, 'long', turnId)).answer).toBe(end.final_output);
      for (const instance of cluster.instances) expect(instance.output().stdout).not.toContain('stopped answering as interrupted');
    });
  },
);
