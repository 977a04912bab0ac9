import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisLogKeys } from '../src/streams/redis-log-format.js';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis, testRedisUrl } from './support/redis.js';
import { readSse, type SseEvent } from './support/sse-client.js';
import { postJson } from './support/test-server.js';
import { chatRequests, shapeOf } from './support/tool-stream.js';

// Two real ChatWait processes on one PostgreSQL and one Redis, behind nginx: a reader on the instance
// that is not producing a turn reads it exactly as a reader on the producing one does, whichever way it
// asks (the same message, Last-Event-ID, last_token_index, /chat/wait). Where a test must know which
// instance produces and which reads, it talks to each instance's own URL.

/** What a client sees of events: exactly the `id:` and `data:` lines. */
const wire = (events: SseEvent[]) => events.map((event) => `id: ${event.id}\ndata: ${event.data}`);

/** The limits are per client, and every test client is 127.0.0.1: off, so other tests' requests on the shared Redis do not count. */
const ENV = {
  SHUTDOWN_DRAIN_SECONDS: '0',
  REDIS_WRITE_WINDOW_MS: '10',
  RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
  MAX_STREAMS_PER_CLIENT: '0',
  MAX_GENERATING_TURNS_PER_CLIENT: '0',
  UPSTREAM_MAX_RETRIES: '0',
  RESPONSE_TIMEOUT_SECONDS: '2',
  TOOLS: 'calculate',
};

/** `count` tokens of the fake model's answer. */
const words = (count: number) => Array.from({ length: count }, (_, index) => ` w${index}`);

describe.skipIf(!hasPostgres() || !hasRedis() || !hasNginx())(
  'a turn read from the instance that is not producing it',
  { timeout: 60_000 },
  () => {
    let fake: FakeOpenAIServer;
    let deployment: InstancesBehindNginx;
    let a: string;
    let b: string;
    beforeAll(async () => {
      fake = await startFakeOpenAI();
      const database = await createTestDatabase('attach');
      deployment = await startInstancesBehindNginx(2, {
        ...ENV,
        DATABASE_URL: database,
        REDIS_URL: testRedisUrl(),
        OPENAI_BASE_URL: fake.baseUrl,
      });
      [a, b] = deployment.urls as [string, string];
    }, 60_000);
    afterAll(async () => {
      await deployment?.stop();
      await fake?.close();
    });

    const stream = (url: string, query: string, headers: Record<string, string> = {}) =>
      readSse(`${url}/api/v1/chat/streaming?${query}`, { headers });

    it('gives the same bytes on both instances, live, by message, Last-Event-ID and last_token_index, tool events included', async () => {
      const before = chatRequests(fake).length;
      fake.enqueue(
        {
          kind: 'tool_calls',
          tokens: ['Let', ' me', ' check.'],
          calls: [{ id: 'call_p', name: 'calculate', arguments: ['{"expression":', '"6*7"}'] }],
        },
        { kind: 'stream', tokens: ['It is 42.', ...words(60)], delayMs: 30 },
      );
      const query = 'message=what%20is%206%20times%207&context_id=parity';
      // A produces the turn; its first reader holds the tool events and a token of the answer.
      const first = await readSse(`${a}/api/v1/chat/streaming?${query}`, { until: (_, events) => events.length === 8 });
      expect(shapeOf(first.events.slice(1))).toEqual([
        'token',
        'token',
        'token',
        'tool_call:call_p',
        'tool_result:call_p',
        'token',
        'token',
      ]);
      const held = first.events.at(-1)!;
      const toolCallId = first.events[4]!.id!;
      // Every read begins while A still generates, and follows the live tail to the end, on A and on B.
      const both = <T>(read: (url: string) => Promise<T>) => Promise.all([read(a), read(b)]);
      const [byMessage, byEventId, byTokenIndex, waited] = await Promise.all([
        both((url) => stream(url, query)),
        both((url) => stream(url, query, { 'Last-Event-ID': toolCallId })),
        both((url) => stream(url, `${query}&last_token_index=${(held.json.token_index as number) + 1}`)),
        both((url) => postJson(`${url}/api/v1/chat/wait`, { message: 'what is 6 times 7', context_id: 'parity' })),
      ]);
      for (const [onA, onB] of [byMessage, byEventId, byTokenIndex]) {
        expect(onA!.status).toBe(200);
        expect(onB!.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop', token_count: 64 });
        expect(wire(onB!.events)).toEqual(wire(onA!.events));
      }
      // Attached by message: the whole turn from its start, resumed, the tool events in their place.
      expect(byMessage[1].events[0]!.json).toMatchObject({ type: 'start', resumed: true, turn_id: first.events[0]!.json.turn_id });
      expect(wire(byMessage[1].events.slice(1, 8))).toEqual(wire(first.events.slice(1, 8)));
      expect(shapeOf(byEventId[1].events.slice(1, 3))).toEqual(['tool_result:call_p', 'token']);
      expect(byTokenIndex[1].events[1]!.json).toMatchObject({ type: 'token', token_index: (held.json.token_index as number) + 1 });
      // /chat/wait on B answers from the log's `end`, with the tool steps, as A's does.
      const [waitA, waitB] = waited;
      expect(waitA.status).toBe(200);
      const { processing_time_ms: _a, ...onA } = waitA.body;
      const { processing_time_ms: _b, ...onB } = waitB.body;
      expect(onB).toEqual(onA);
      expect(onB).toMatchObject({
        turn_id: first.events[0]!.json.turn_id,
        token_count: 64,
        tool_steps: [{ call_id: 'call_p', output: '6*7 = 42' }],
      });
      // Nothing started a second generation: one model call for the tool round, one for the answer.
      expect(chatRequests(fake).length - before).toBe(2);

      // Ended: through nginx, whichever instance serves it, the same bytes again.
      const again = await stream(deployment.url, query, { 'Last-Event-ID': toolCallId });
      expect(wire(again.events)).toEqual(wire(byEventId[0].events));
    });

    it('fails a /chat/wait attached on B as it fails on A, from the log', async () => {
      fake.enqueue({ kind: 'hang', tokens: ['Partial'] });
      const send = { message: 'this one stalls', context_id: 'stalls' };
      await readSse(`${a}/api/v1/chat/streaming?message=this%20one%20stalls&context_id=stalls`, {
        until: (event) => event.json.type === 'token',
      });
      const [onA, onB] = await Promise.all([postJson(`${a}/api/v1/chat/wait`, send), postJson(`${b}/api/v1/chat/wait`, send)]);
      expect(onA.status).toBe(504);
      expect(onB.status).toBe(onA.status);
      expect({ ...onB.body, request_id: undefined }).toEqual({ ...onA.body, request_id: undefined });
      expect(onB.body).toMatchObject({ error_code: 'UPSTREAM_TIMEOUT', retryable: true });
    });

    it('generates once for the same client_message_id sent to both at once, and answers one of two different messages', async () => {
      const before = chatRequests(fake).length;
      fake.enqueue({ kind: 'stream', tokens: ['Only', ' once.', ...words(20)], delayMs: 20 });
      const send = { message: 'say it once', context_id: 'dedupe', client_message_id: 'send-1' };
      const [onA, onB] = await Promise.all([postJson(`${a}/api/v1/chat/wait`, send), postJson(`${b}/api/v1/chat/wait`, send)]);
      expect([onA.status, onB.status]).toEqual([200, 200]);
      expect(onB.body.turn_id).toBe(onA.body.turn_id);
      expect(onB.body.message).toBe(onA.body.message);
      expect(onA.body.message).toContain('Only once.');
      expect(chatRequests(fake).length - before).toBe(1);
      // Sent again through nginx once it has ended: the stored answer, no new call.
      expect((await postJson(`${deployment.url}/api/v1/chat/wait`, send)).body).toMatchObject({ turn_id: onA.body.turn_id });
      expect(chatRequests(fake).length - before).toBe(1);

      fake.enqueue({ kind: 'stream', tokens: words(20), delayMs: 20 }, { kind: 'stream', tokens: words(20), delayMs: 20 });
      const [first, second] = await Promise.all([
        postJson(`${a}/api/v1/chat/wait`, { message: 'first message', context_id: 'busy' }),
        postJson(`${b}/api/v1/chat/wait`, { message: 'second message', context_id: 'busy' }),
      ]);
      expect([first.status, second.status].sort()).toEqual([200, 409]);
      expect([first, second].find((response) => response.status === 409)!.body).toMatchObject({ error_code: 'CONVERSATION_BUSY' });
    });
  },
);

describe.skipIf(!hasPostgres() || !hasRedis())('a send held up by the turn of a dead instance', { timeout: 60_000 }, () => {
  const servers: SpawnedServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  it('reaps that turn inline and starts, without waiting for the reaper', async () => {
    const database = await createTestDatabase('reapinline');
    const env = { ...ENV, DATABASE_URL: database, REDIS_URL: testRedisUrl(), DEMO_RESPONSE_TOKENS: '20' };
    // A answers slowly (it is killed mid-answer), B at once.
    // B's own reaper judges others only once B has been connected for B's timeout (10 minutes): within this
    // test only the inline reap can end A's turn. A is judged by its own timeout, 10 s.
    const [onA, onB] = [
      spawnServer({ ...env, INSTANCE_TIMEOUT_SECONDS: '10', DEMO_TOKENS_PER_SECOND: '1' }),
      spawnServer({ ...env, INSTANCE_TIMEOUT_SECONDS: '600', DEMO_TOKENS_PER_SECOND: '0' }),
    ];
    servers.push(onA, onB);
    const [a, b] = await Promise.all([onA.url, onB.url]);
    const started = performance.now();
    const dying = await readSse(`${a}/api/v1/chat/streaming?message=long&context_id=dead`, {
      until: (event) => event.json.type === 'token',
    });
    const deadTurnId = String(dying.events[0]!.json.turn_id);
    onA.child.kill('SIGKILL');
    await onA.exited;
    const send = () => postJson(`${b}/api/v1/chat/wait`, { message: 'next', context_id: 'dead' });
    // A's heartbeat is fresh yet: its turn holds the conversation.
    expect((await send()).body).toMatchObject({ error_code: 'CONVERSATION_BUSY' });
    // Once A's heartbeat is older than its timeout (and B has been up that long), the send reaps A's turn and starts.
    await sleep(Math.max(0, 10_500 - (performance.now() - started)));
    let answered = await send();
    for (const deadline = performance.now() + 15_000; answered.status === 409 && performance.now() < deadline; answered = await send())
      await sleep(250);
    expect(answered.status).toBe(200);
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      const { rows } = await client.query<{ status: string }>("SELECT status FROM turns WHERE context_id = 'dead' ORDER BY sequence");
      expect(rows.map((row) => row.status)).toEqual(['interrupted', 'complete']);
    } finally {
      await client.end();
    }
    // The inline reap sealed A's log too: readers on other instances get its one final event.
    const redis = new Redis(testRedisUrl());
    try {
      const entries = (await redis.xrange(redisLogKeys('cw:', deadTurnId).log, '-', '+')) as [string, string[]][];
      const finals = entries.filter(([, fields]) => fields.includes('f'));
      expect(finals).toHaveLength(1);
      expect(entries.at(-1)).toBe(finals[0]);
      expect(JSON.parse(finals[0]![1][1]!)).toMatchObject({ type: 'error', error_code: 'SHUTTING_DOWN', turn_id: deadTurnId });
    } finally {
      redis.disconnect();
    }
  });
});
