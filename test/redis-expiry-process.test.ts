import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { startInstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis } from './support/redis.js';
import { readSse, type SseEvent } from './support/sse-client.js';

// Times to live in Redis under real ChatWait processes behind nginx (scale-out.md §7.13, §7.16): a turn
// whose tool runs longer than its keys would live keeps them, a resume after STREAM_TTL_SECONDS gets
// `resync` from the store, and every key the service writes expires by itself.

/** A tool that waits as long as it is asked to: a long-running tool call, with nothing streamed meanwhile. */
const WAIT_TOOL = `export default {
  name: 'wait',
  description: 'Waits ms milliseconds.',
  parameters: { type: 'object', properties: { ms: { type: 'integer' } }, required: ['ms'], additionalProperties: false },
  execute: ({ ms }) => new Promise((resolve) => setTimeout(() => resolve('waited'), ms)),
};
`;

/**
 * A generating turn's keys live STREAM_TTL_SECONDS + 2 × RESPONSE_TIMEOUT_SECONDS = 3 s from each
 * write; the tool runs 5 s, so they outlive it only if the producer keeps renewing them.
 */
const ENV = {
  STREAM_TTL_SECONDS: '1',
  RESPONSE_TIMEOUT_SECONDS: '1',
  TOOLS: 'none',
  SHUTDOWN_DRAIN_SECONDS: '0',
  // A bucket's key lives until it is full again: 10 s after one message at 6 a minute, so it is there to check.
  RATE_LIMIT_REQUESTS_PER_MINUTE: '6',
};
const TOOL_MS = 5000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!hasRedis() || !hasPostgres() || !hasNginx())('times to live in Redis under two instances', { timeout: 90_000 }, () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("keeps a turn's keys while its tool runs past their time to live, resyncs a resume after STREAM_TTL_SECONDS, and leaves no key without a time to live", async () => {
    // A Redis of its own: every key in it is one this service wrote.
    const redis = await startLocalRedis();
    cleanups.push(() => redis.stop());
    const client = new Redis(redis.url);
    cleanups.push(() => client.disconnect());
    const fake = await startFakeOpenAI();
    cleanups.push(() => fake.close());
    const tools = mkdtempSync(join(tmpdir(), 'chatwait-wait-tool-'));
    writeFileSync(join(tools, 'wait.mjs'), WAIT_TOOL);
    const cluster = await startInstancesBehindNginx(2, {
      ...ENV,
      TOOLS_DIR: tools,
      OPENAI_BASE_URL: fake.baseUrl,
      DATABASE_URL: await createTestDatabase('expiry'),
      REDIS_URL: redis.url,
    });
    cleanups.push(() => cluster.stop());
    const [a, b] = cluster.urls as [string, string];
    /** No key in this Redis lacks a time to live (PTTL -1), whatever wrote it. */
    const expectEveryKeyToExpire = async () => {
      const ttls = await Promise.all((await client.keys('*')).map(async (key) => [key, await client.pttl(key)] as const));
      expect(ttls.filter(([, ttl]) => ttl === -1)).toEqual([]);
    };
    fake.enqueue(
      { kind: 'tool_calls', tokens: ['Waiting.'], calls: [{ id: 'call_wait', name: 'wait', arguments: [`{"ms": ${TOOL_MS}}`] }] },
      { kind: 'stream', tokens: ['Done', ' waiting.'] },
    );

    const query = 'message=wait%20for%20it&context_id=long-tool';
    const onA: SseEvent[] = [];
    const producing = readSse(`${a}/api/v1/chat/streaming?${query}`, { until: (event) => (onA.push(event), false) });
    await expect.poll(() => onA.some((event) => event.json.type === 'tool_call'), { timeout: 10_000, interval: 20 }).toBe(true);
    const turnId = onA[0]!.json.turn_id as string;
    const toolCall = onA.find((event) => event.json.type === 'tool_call')!;
    const keys = [`cw:t:{${turnId}}:log`, `cw:t:{${turnId}}:meta`];
    // Past the keys' 3 s time to live, the tool still running: they are there, renewed, and B follows the turn from them.
    await sleep(TOOL_MS - 1000);
    for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(0);
    // Every key written so far (the turn's log and state, the rate limit's bucket, the open stream's and generating turn's leases) expires by itself.
    const written = await client.keys('*');
    expect(written).toEqual(expect.arrayContaining([...keys, expect.stringMatching(/^cw:rl:/), expect.stringMatching(/^cw:lease:/)]));
    await expectEveryKeyToExpire();
    const onB = await readSse(`${b}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': toolCall.id! } });
    expect(onB.status).toBe(200);
    expect(onB.events.slice(1).map((event) => event.json.type)).toEqual(['tool_result', 'token', 'token', 'end']);
    const local = await producing;
    expect(onB.events.slice(1).map((event) => event.data)).toEqual(
      local.events.slice(local.events.indexOf(toolCall) + 1).map((event) => event.data),
    );

    await expectEveryKeyToExpire();

    // Ended, its log goes STREAM_TTL_SECONDS later: a late resume, on either instance, gets resync and the stored end.
    await expect.poll(async () => await client.exists(...keys), { timeout: 10_000, interval: 100 }).toBe(0);
    await sleep(500);
    const end = local.events.at(-1)!.json;
    expect(end).toMatchObject({ type: 'end', final_output: 'Waiting.Done waiting.' });
    for (const url of [a, b]) {
      const late = await readSse(`${url}/api/v1/chat/streaming?${query}`, { headers: { 'Last-Event-ID': toolCall.id! } });
      expect(late.events.slice(1).map((event) => event.json)).toMatchObject([
        { type: 'resync', turn_id: turnId, final_output: end.final_output },
        { type: 'end', final_output: end.final_output },
      ]);
    }
  });
});
