import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis } from './support/redis.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

// A cancel sent to any instance stops the generation on the instance that runs it (scale-out.md §6.13,
// §7.4): two real processes on PostgreSQL and their own Redis behind nginx; the cancels are pinned to
// the instance that does NOT generate, by its own URL. The fake upstream sees the generation's abort.

/** 300 tokens, 20 ms apart: six seconds of answer, far longer than any cancel here takes. */
const LONG = Array.from({ length: 300 }, (_, index) => `w${index} `);

/** A tool plugin that takes twenty seconds, unless its turn is cancelled (it is handed the turn's signal). */
const SLOW_TOOL = `export default {
  name: 'slow_lookup',
  description: 'Looks something up, slowly.',
  parameters: { type: 'object', properties: {} },
  execute: () => new Promise((resolve) => setTimeout(() => resolve('found it'), 20000)),
};
`;

describe.skipIf(!hasNginx() || !hasPostgres() || !hasRedis())('cancel from any instance', { timeout: 60_000 }, () => {
  let fake: FakeOpenAIServer;
  let cluster: InstancesBehindNginx;
  let redis: Awaited<ReturnType<typeof startLocalRedis>>;
  let client: Redis;
  let database: string;
  beforeAll(async () => {
    const tools = mkdtempSync(join(tmpdir(), 'chatwait-cancel-tools-'));
    writeFileSync(join(tools, 'slow-lookup.mjs'), SLOW_TOOL);
    database = await createTestDatabase('cancel');
    fake = await startFakeOpenAI();
    // Its own Redis: a test here kills every subscriber connection of it.
    redis = await startLocalRedis();
    client = new Redis(redis.url);
    cluster = await startInstancesBehindNginx(2, {
      LLM_PROVIDER: 'openai',
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_API_KEY: 'test',
      DATABASE_URL: database,
      TOOLS_DIR: tools,
      TOOL_TIMEOUT_SECONDS: '60',
      REDIS_URL: redis.url,
      INSTANCE_TIMEOUT_SECONDS: '10',
      SHUTDOWN_DRAIN_SECONDS: '0',
    });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    client?.disconnect();
    await redis?.stop();
    await fake?.close();
  });

  /** Starts a turn on instance `index` (pinned) and returns its ids once `tokens` tokens have come. */
  async function startOn(index: number, message: string, tokens = 3) {
    const opened = await readSse(`${cluster.urls[index]}/api/v1/chat/streaming?message=${encodeURIComponent(message)}`, {
      until: (_, events) => tokensOf(events).length >= tokens,
    });
    expect(opened.status).toBe(200);
    const start = opened.events[0]!.json as { turn_id: string; context_id: string };
    return { turnId: start.turn_id, contextId: start.context_id, lastId: opened.events.at(-1)!.id! };
  }

  /** The stored turn, as any instance reads it. */
  async function storedTurn(contextId: string, turnId: string) {
    const { body } = await getJson(`${cluster.url}/api/v1/conversations/${contextId}`);
    return (body.turns as { turn_id: string; status: string; answer: string }[]).find((turn) => turn.turn_id === turnId)!;
  }

  /** Waits until the fake has seen `count` connections close (the generation's request aborted). */
  async function closedConnections(count: number) {
    for (const deadline = Date.now() + 5000; Date.now() < deadline && fake.closedConnections() < count;) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return fake.closedConnections();
  }

  it('stops the generation on A when B is asked, keeps the partial answer as cancelled, and a second cancel changes nothing', async () => {
    const closedBefore = fake.closedConnections();
    fake.enqueue({ kind: 'stream', tokens: LONG, delayMs: 20 });
    const { turnId, contextId, lastId } = await startOn(0, 'cancel me from B');
    // A reader of the turn on B follows it to its end.
    const reader = readSse(`${cluster.urls[1]}/api/v1/chat/streaming?message=x&context_id=${contextId}`, {
      headers: { 'Last-Event-ID': lastId },
    });
    const cancelled = await postJson(`${cluster.urls[1]}/api/v1/chat/turns/${turnId}/cancel`, {});
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ turn_id: turnId, status: 'cancelled' });
    expect(await closedConnections(closedBefore + 1)).toBe(closedBefore + 1);
    const stored = await storedTurn(contextId, turnId);
    expect(stored.status).toBe('cancelled');
    expect(stored.answer.length).toBeGreaterThan(0);
    expect(stored.answer.length).toBeLessThan(LONG.join('').length);
    expect(LONG.join('').startsWith(stored.answer)).toBe(true);
    const followed = await reader;
    expect(followed.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'cancelled', final_output: stored.answer });
    // Again, on either instance: the same answer, nothing else stopped or changed.
    for (const url of cluster.urls) {
      const again = await postJson(`${url}/api/v1/chat/turns/${turnId}/cancel`, {});
      expect(again.body).toMatchObject({ turn_id: turnId, status: 'cancelled' });
    }
    expect((await storedTurn(contextId, turnId)).answer).toBe(stored.answer);
  });

  it('answers a cancel of an ended turn with its stored status', async () => {
    fake.enqueue({ kind: 'stream', tokens: ['all ', 'done'] });
    const waited = await postJson(`${cluster.urls[0]}/api/v1/chat/wait`, { message: 'finish first' });
    expect(waited.status).toBe(200);
    const cancelled = await postJson(`${cluster.urls[1]}/api/v1/chat/turns/${waited.body.turn_id}/cancel`, {});
    expect(cancelled.body).toMatchObject({ turn_id: waited.body.turn_id, status: 'complete' });
  });

  it("stops a stalled model's turn on A although every subscriber connection was killed (the flag is polled)", async () => {
    const closedBefore = fake.closedConnections();
    // Three tokens, then nothing: no flush of A's will carry the flag back.
    fake.enqueue({ kind: 'hang', tokens: ['stalled ', 'right ', 'here '] });
    const { turnId, contextId } = await startOn(0, 'stall on A');
    await client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const cancelled = await postJson(`${cluster.urls[1]}/api/v1/chat/turns/${turnId}/cancel`, {});
    expect(cancelled.body).toMatchObject({ turn_id: turnId, status: 'cancelled' });
    expect(await closedConnections(closedBefore + 1)).toBe(closedBefore + 1);
    expect(await storedTurn(contextId, turnId)).toMatchObject({ status: 'cancelled', answer: 'stalled right here ' });
  });

  it("cancels A's running turn when B deletes its conversation", async () => {
    const closedBefore = fake.closedConnections();
    fake.enqueue({ kind: 'stream', tokens: LONG, delayMs: 20 });
    const { turnId, contextId } = await startOn(0, 'delete me from B');
    const deleted = await fetch(`${cluster.urls[1]}/api/v1/conversations/${contextId}`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    expect(await closedConnections(closedBefore + 1)).toBe(closedBefore + 1);
    expect((await getJson(`${cluster.url}/api/v1/conversations/${contextId}`)).status).toBe(404);
    // Nothing of the turn is left `streaming` in the store: its row went with the conversation.
    const db = new pg.Client({ connectionString: database });
    await db.connect();
    try {
      expect((await db.query('SELECT status FROM turns WHERE turn_id = $1', [turnId])).rows).toEqual([]);
    } finally {
      await db.end();
    }
    // A's log of it (a delete leaves the log to its TTL) has exactly one final entry: the cancelled end, written before the delete.
    const finals = ((await client.xrange(`cw:t:{${turnId}}:log`, '-', '+')) as [string, string[]][]).filter(([, fields]) =>
      fields.some((field, index) => index % 2 === 0 && field === 'f'),
    );
    expect(finals).toHaveLength(1);
    const data = finals[0]![1][finals[0]![1].indexOf('d') + 1]!;
    expect(JSON.parse(data)).toMatchObject({ type: 'end', finish_reason: 'cancelled' });
  });

  it('cancels from B a turn whose tool is running on A: `cancelled` within 2 s of the request (scale-out.md §7.4)', async () => {
    fake.enqueue({ kind: 'tool_calls', calls: [{ id: 'call_slow', name: 'slow_lookup', arguments: ['{}'] }] });
    const opened = await readSse(`${cluster.urls[0]}/api/v1/chat/streaming?message=look%20it%20up%20slowly`, {
      until: (event) => event.json.type === 'tool_call',
    });
    expect(opened.events.at(-1)!.json).toMatchObject({ type: 'tool_call', name: 'slow_lookup' });
    const { turn_id: turnId, context_id: contextId } = opened.events[0]!.json as { turn_id: string; context_id: string };
    const sent = Date.now();
    const cancelled = await postJson(`${cluster.urls[1]}/api/v1/chat/turns/${turnId}/cancel`, {});
    const tookMs = Date.now() - sent;
    expect(cancelled.body).toMatchObject({ turn_id: turnId, status: 'cancelled' });
    expect(tookMs).toBeLessThan(2000);
    expect(await storedTurn(contextId, turnId)).toMatchObject({ status: 'cancelled' });
  });
});
