import { Redis } from 'ioredis';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { hasRedis } from './support/redis.js';
import { readSse, tokensOf, type SseEvent } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

// An instance that dies mid-answer (scale-out.md §6.14–15, §7.5–7, §7.17): two real processes on
// PostgreSQL and their own Redis behind nginx, the demo model answering 20 tokens a second. Requests
// that must reach one instance go to its own URL.

const TIMEOUT_SECONDS = 10;

describe.skipIf(!hasNginx() || !hasPostgres() || !hasRedis())('an instance dying mid-answer', { timeout: 90_000 }, () => {
  let cluster: InstancesBehindNginx;
  let redis: Awaited<ReturnType<typeof startLocalRedis>>;
  let database: string;
  beforeEach(async () => {
    redis = await startLocalRedis();
    database = await createTestDatabase('death');
    cluster = await startInstancesBehindNginx(2, {
      DATABASE_URL: database,
      REDIS_URL: redis.url,
      INSTANCE_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS),
      DEMO_TOKENS_PER_SECOND: '20',
      SHUTDOWN_DRAIN_SECONDS: '0',
    });
  }, 60_000);
  afterEach(async () => {
    for (const instance of cluster?.instances ?? []) instance.child.kill('SIGCONT');
    await cluster?.stop();
    await redis?.stop();
  });

  /** Starts a turn on instance `index` and returns its ids and first events once 3 tokens have come. */
  async function startOn(index: number, message: string) {
    const opened = await readSse(`${cluster.urls[index]}/api/v1/chat/streaming?message=${encodeURIComponent(message)}`, {
      until: (_, events) => tokensOf(events).length >= 3,
    });
    expect(opened.status).toBe(200);
    const start = opened.events[0]!.json as { turn_id: string; context_id: string };
    return { turnId: start.turn_id, contextId: start.context_id, events: opened.events, lastId: opened.events.at(-1)!.id! };
  }

  /** Follows a turn on instance `index` from after `lastId` to its end. */
  function follow(index: number, contextId: string, lastId: string) {
    return readSse(`${cluster.urls[index]}/api/v1/chat/streaming?message=x&context_id=${contextId}`, {
      headers: { 'Last-Event-ID': lastId },
    });
  }

  async function storedTurn(index: number, contextId: string, turnId: string) {
    const { body } = await getJson(`${cluster.urls[index]}/api/v1/conversations/${contextId}`);
    return (body.turns as { turn_id: string; status: string; answer: string }[]).find((turn) => turn.turn_id === turnId)!;
  }

  /** Waits (up to `seconds`) until the stored turn leaves `streaming`, reading through instance `index`. */
  async function endedTurn(index: number, contextId: string, turnId: string, seconds: number) {
    for (const deadline = Date.now() + seconds * 1000; ; await new Promise((resolve) => setTimeout(resolve, 200))) {
      const turn = await storedTurn(index, contextId, turnId);
      if (turn.status !== 'streaming' || Date.now() > deadline) return turn;
    }
  }

  const joined = (events: SseEvent[]) => tokensOf(events).join('');

  it("seals a killed instance's turn for its readers elsewhere and stores it interrupted, and leaves the other's turn alone", async () => {
    const onA = await startOn(0, 'answer in 600 tokens');
    const onB = await startOn(1, 'answer in 300 tokens');
    const bToEnd = follow(1, onB.contextId, onB.lastId);
    const tail = follow(1, onA.contextId, onA.lastId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    cluster.instances[0]!.child.kill('SIGKILL');
    await cluster.instances[0]!.exited;
    // Within the timeout and a heartbeat or two (a third of it each), B's reaper ends A's turn.
    const tailed = await tail;
    expect(tailed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'SHUTTING_DOWN', retryable: true, turn_id: onA.turnId });
    expect(tailed.events.filter((event) => event.json.type === 'error' || event.json.type === 'end')).toHaveLength(1);
    const reaped = await endedTurn(1, onA.contextId, onA.turnId, TIMEOUT_SECONDS);
    expect(reaped.status).toBe('interrupted');
    // What the readers saw is kept (a last save of A's may have held a few tokens more, never fewer).
    const seen = joined([...onA.events, ...tailed.events]);
    expect(reaped.answer.startsWith(seen)).toBe(true);
    // Then they resync from the store: the stored answer, and how the turn ended.
    const resumed = await follow(1, onA.contextId, `${onA.turnId}/resync`);
    expect(resumed.events.slice(1).map((event) => event.json)).toMatchObject([
      { type: 'resync', final_output: reaped.answer },
      { type: 'end', finish_reason: 'interrupted', final_output: reaped.answer },
    ]);
    // B's own turn went on to its end, and A's conversation takes a new message.
    expect((await bToEnd).events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
    expect((await storedTurn(1, onB.contextId, onB.turnId)).status).toBe('complete');
    const next = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'again, in 3 tokens', context_id: onA.contextId });
    expect(next.status).toBe(200);
  });

  it('fences a paused producer that wakes after being reaped: one final event in the log, the turn stays interrupted', async () => {
    const onA = await startOn(0, 'answer in 600 tokens');
    cluster.instances[0]!.child.kill('SIGSTOP');
    const reaped = await endedTurn(1, onA.contextId, onA.turnId, TIMEOUT_SECONDS * 2);
    expect(reaped.status).toBe('interrupted');
    const client = new Redis(redis.url);
    try {
      const finals = async () => {
        const entries = (await client.xrange(`cw:t:{${onA.turnId}}:log`, '-', '+')) as [string, string[]][];
        return { count: entries.length, finals: entries.filter(([, fields]) => fields.includes('f')).length };
      };
      const sealed = await finals();
      expect(sealed.finals).toBe(1);
      cluster.instances[0]!.child.kill('SIGCONT');
      // Awake, A flushes and saves again (each refused), and stops.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(await finals()).toEqual(sealed);
      expect(await storedTurn(1, onA.contextId, onA.turnId)).toEqual(reaped);
      expect(cluster.instances[0]!.output().stdout).toContain('another instance took it as interrupted');
    } finally {
      client.disconnect();
    }
  });

  it("leaves the other instance's generating turns alone when one instance restarts", async () => {
    const onB = await startOn(1, 'answer in 600 tokens');
    await cluster.restart(0);
    expect((await storedTurn(0, onB.contextId, onB.turnId)).status).toBe('streaming');
    expect((await follow(1, onB.contextId, onB.lastId)).events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
    expect((await storedTurn(0, onB.contextId, onB.turnId)).status).toBe('complete');
  });

  it("ends a draining instance's turns for readers on the other with the drain's error and removes its row at once", async () => {
    const onA = await startOn(0, 'answer in 600 tokens');
    const tail = follow(1, onA.contextId, onA.lastId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const db = new pg.Client({ connectionString: database });
    await db.connect();
    try {
      const instances = async () => Number((await db.query('SELECT count(*) AS n FROM instances')).rows[0].n);
      expect(await instances()).toBe(2);
      cluster.instances[0]!.child.kill('SIGTERM');
      expect((await tail).events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'SHUTTING_DOWN', retryable: true });
      expect(await cluster.instances[0]!.exited).toBe(0);
      expect(await instances()).toBe(1);
      expect((await storedTurn(1, onA.contextId, onA.turnId)).status).toBe('interrupted');
    } finally {
      await db.end();
    }
  });
});
