import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from './support/cutting-proxy.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis, testRedisUrl } from './support/redis.js';
import { parseSse, type SseEvent } from './support/sse-client.js';
import { getJson } from './support/test-server.js';
import { seededRandom as random } from './support/seeded-random.js';

// test/chaos.test.ts across instances: two real processes on Redis + PostgreSQL behind the repository's
// nginx (round robin, no sticky sessions). Every stream is cut at random points and resumed through nginx,
// so a resume lands on either instance, the one generating the turn or the other (which reads Redis).

const STREAMS = 200;
/** Streams in flight at once: two instances, nginx and this client share two cores. */
const CONCURRENCY = 16;
const ANSWER_TOKENS = 100;
/** What share of the streams is cut by dropping the TCP connection (a proxy of their own), the rest by the client closing it. */
const TCP_CUT_SHARE = 0.25;
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000_007);

/** What one stream will do, drawn up front from the seed (so the draws do not depend on timing). */
interface Plan {
  index: number;
  /** After how many tokens received each connection is cut, in order. */
  cuts: number[];
  /** Cut by dropping the TCP connection in a proxy between client and nginx, instead of closing it. */
  tcp: boolean;
}

function planStreams(next: () => number): Plan[] {
  return Array.from({ length: STREAMS }, (_, index) => {
    const count = 1 + Math.floor(next() * 3);
    const cuts = [...new Set(Array.from({ length: count }, () => 1 + Math.floor(next() * (ANSWER_TOKENS - 10))))].sort((a, b) => a - b);
    return { index, cuts, tcp: next() < TCP_CUT_SHARE };
  });
}

/** One connection of a stream: its request id (to find who served it) and how it started or resumed. */
interface Attempt {
  requestId: string;
  method: 'start' | 'last-event-id' | 'last_token_index';
}

/** How many resumes one instance served, by method (its `chatwait_resumes_total`). */
async function resumesServed(url: string): Promise<{ last_event_id: number; last_token_index: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const count = (method: string) => Number(new RegExp(`^chatwait_resumes_total\\{method="${method}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { last_event_id: count('last_event_id'), last_token_index: count('last_token_index') };
}

let cluster: InstancesBehindNginx;
const run = randomBytes(4).toString('hex');

describe.skipIf(!hasNginx() || !hasPostgres() || !hasRedis())('chaos across two instances behind nginx', () => {
  beforeAll(async () => {
    cluster = await startInstancesBehindNginx(2, {
      DATABASE_URL: await createTestDatabase('chaos'),
      REDIS_URL: testRedisUrl(),
      TRUST_PROXY: 'true',
      // About half a second of generating per answer: every cut lands while the turn still runs, or just after.
      DEMO_TOKENS_PER_SECOND: '200',
      RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
      MAX_STREAMS_PER_CLIENT: '0',
      MAX_GENERATING_TURNS_PER_CLIENT: '0',
      SHUTDOWN_DRAIN_SECONDS: '0',
    });
  });
  afterAll(() => cluster?.stop());

  /** Reads one connection of a stream into `received`; `cutAt` tokens in, cuts it (the client closes, or the proxy drops it). */
  async function connect(url: string, headers: Record<string, string>, received: SseEvent[], cutAt: number | undefined, proxy?: TcpProxy) {
    const controller = new AbortController();
    const response = await fetch(url, { headers, signal: controller.signal });
    expect(response.status).toBe(200);
    let start: SseEvent | undefined;
    let cutting = false;
    const tokens = () => received.filter((event) => event.json.type === 'token').length;
    try {
      for await (const item of parseSse(response.body!)) {
        if (item.kind !== 'event') continue;
        if (item.event.json.type === 'start') {
          start = item.event;
          continue;
        }
        received.push(item.event);
        if (!cutting && cutAt !== undefined && tokens() >= cutAt) {
          cutting = true;
          if (!proxy) break;
          // Both sides of the TCP connection go at once; whatever was already in flight may still be read, then the read fails.
          proxy.cut();
        }
      }
    } catch (error) {
      if (!cutting) throw error;
    } finally {
      controller.abort();
    }
    return { start: start!.json, cut: cutting };
  }

  /** One client: reads its stream, cutting the connection at each planned point and resuming by alternating methods. */
  async function chaoticClient({ index, cuts, tcp }: Plan) {
    const proxy = tcp ? await startTcpProxy(cluster.url) : undefined;
    try {
      const base = proxy?.url ?? cluster.url;
      const contextId = `chaos-${run}-${index}`;
      const message = `stream ${index}: answer in ${ANSWER_TOKENS} tokens`;
      const url = `${base}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`;
      const received: SseEvent[] = [];
      const attempts: Attempt[] = [];
      let turnId: string | undefined;
      for (let attempt = 0; ; attempt++) {
        const requestId = `chaos-${run}-${index}-${attempt}`;
        const byHeader = (index + attempt) % 2 === 0;
        const tokens = received.filter((event) => event.json.type === 'token').length;
        const method = attempt === 0 ? 'start' : byHeader ? 'last-event-id' : 'last_token_index';
        attempts.push({ requestId, method });
        const headers: Record<string, string> = { 'x-request-id': requestId };
        if (method === 'last-event-id') headers['last-event-id'] = received.at(-1)!.id!;
        const attemptUrl = method === 'last_token_index' ? `${url}&last_token_index=${tokens}` : url;
        const { start, cut } = await connect(attemptUrl, headers, received, cuts[attempt], proxy);
        turnId ??= start.turn_id;
        expect(start.turn_id, `stream ${index} (seed ${SEED})`).toBe(turnId);
        expect(start.resumed).toBe(attempt > 0);
        if (received.at(-1)?.json.type === 'end') break;
        expect(cut, `stream ${index} ended its connection without an end event (seed ${SEED})`).toBe(true);
      }
      return { index, contextId, turnId: turnId!, received, attempts, tcp };
    } finally {
      await proxy?.close();
    }
  }

  it(
    `delivers every token exactly once across ${STREAMS} streams cut at random points and resumed on either instance`,
    { timeout: 120_000 },
    async () => {
      console.info(`chaos-instances: seed ${SEED} (replay with CHAOS_SEED=${SEED})`);
      const startedAt = Date.now();
      const plans = planStreams(random(SEED));
      const results: Awaited<ReturnType<typeof chaoticClient>>[] = [];
      let nextPlan = 0;
      const worker = async () => {
        while (nextPlan < plans.length) results.push(await chaoticClient(plans[nextPlan++]!));
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const streamedMs = Date.now() - startedAt;

      for (const { index, contextId, received } of results) {
        const where = `stream ${index} (seed ${SEED})`;
        const tokenEvents = received.filter((event) => event.json.type === 'token');
        expect(
          tokenEvents.map((event) => event.json.token_index),
          where,
        ).toEqual(tokenEvents.map((_, position) => position));
        const end = received.at(-1)!.json;
        expect(end.type, where).toBe('end');
        expect(
          received.filter((event) => event.json.type === 'end'),
          where,
        ).toHaveLength(1);
        expect(tokenEvents.map((event) => event.json.token).join(''), where).toBe(end.final_output);
        expect(end.token_count, where).toBe(tokenEvents.length);
        // The stored answer, read through nginx too (so from either instance).
        const stored = await getJson(`${cluster.url}/api/v1/conversations/${contextId}`);
        expect(stored.status, where).toBe(200);
        expect(stored.body.turns, where).toHaveLength(1);
        expect(stored.body.turns[0], where).toMatchObject({ status: 'complete', answer: end.final_output });
      }

      // Who served what: each request's log line names the instance (the first request's is the one generating the
      // turn); each instance's metrics count the resumes it served, by method.
      const perInstance = [0, 0];
      let resumedElsewhere = 0;
      const byMethod = { 'last-event-id': 0, last_token_index: 0 };
      for (const { attempts } of results) {
        const producer = await cluster.servedBy(attempts[0]!.requestId);
        for (const { requestId, method } of attempts.slice(1)) {
          const served = await cluster.servedBy(requestId);
          perInstance[served]!++;
          if (served !== producer) resumedElsewhere++;
          byMethod[method as keyof typeof byMethod]++;
        }
      }
      const resumes = perInstance[0]! + perInstance[1]!;
      // Exactly the resumes the clients made, by method and by instance, each served (and counted) once.
      const counted = await Promise.all(cluster.urls.map(resumesServed));
      expect(counted.map((counts) => counts.last_event_id + counts.last_token_index)).toEqual(perInstance);
      expect(counted.reduce((sum, counts) => sum + counts.last_event_id, 0)).toBe(byMethod['last-event-id']);
      expect(counted.reduce((sum, counts) => sum + counts.last_token_index, 0)).toBe(byMethod.last_token_index);
      const tcpStreams = results.filter((result) => result.tcp).length;
      console.info(
        `chaos-instances: ${STREAMS} streams (${tcpStreams} cut by TCP), ${resumes} cuts and resumes ` +
          `(served by instance 0: ${perInstance[0]}, instance 1: ${perInstance[1]}; on the other instance than the producer: ${resumedElsewhere}; ` +
          `Last-Event-ID: ${byMethod['last-event-id']}, last_token_index: ${byMethod.last_token_index}) in ${streamedMs} ms, seed ${SEED}`,
      );
      expect(resumes).toBeGreaterThanOrEqual(STREAMS);
      expect(perInstance[0]).toBeGreaterThan(0);
      expect(perInstance[1]).toBeGreaterThan(0);
      expect(resumedElsewhere).toBeGreaterThan(0);
      expect(resumedElsewhere).toBeLessThan(resumes);
      expect(byMethod['last-event-id']).toBeGreaterThan(0);
      expect(byMethod.last_token_index).toBeGreaterThan(0);
      expect(tcpStreams).toBeGreaterThan(0);
    },
  );
});
