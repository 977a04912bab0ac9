import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../src/store/postgres-migrations.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

// Several real ChatWait processes on one PostgreSQL database, as behind a load balancer.

/** The demo model answers 200 tokens at 40 a second: about five seconds of generating to act in. */
const ENV = { DEMO_TOKENS_PER_SECOND: '40', DEMO_RESPONSE_TOKENS: '200', INSTANCE_TIMEOUT_SECONDS: '10', SHUTDOWN_DRAIN_SECONDS: '0' };

async function schemaVersions(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((row) => row.version);
  } finally {
    await client.end();
  }
}

async function turnStatuses(url: string, contextId: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ status: string }>('SELECT status FROM turns WHERE context_id = $1 ORDER BY sequence', [
      contextId,
    ]);
    return rows.map((row) => row.status);
  } finally {
    await client.end();
  }
}

describe.skipIf(!hasPostgres())('ChatWait instances sharing PostgreSQL', { timeout: 90_000 }, () => {
  const servers: SpawnedServer[] = [];
  const start = async (database: string, count: number, env: Record<string, string> = {}) => {
    const started = Array.from({ length: count }, () => spawnServer({ ...ENV, ...env, DATABASE_URL: database }));
    servers.push(...started);
    return Promise.all(started.map((server) => server.url));
  };
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.child.kill('SIGCONT');
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  it('boot together on an empty database, which ends at the latest schema, and two different messages to one conversation give one 200 and one 409', async () => {
    const database = await createTestDatabase('boot3');
    const [a, b, c] = await start(database, 3);
    expect(await Promise.all([a, b, c].map(async (url) => (await getJson(`${url}/api/v1/health/ready`)).status))).toEqual([200, 200, 200]);
    // The schema is at the latest version, each migration applied once, whichever process ran it.
    expect(await schemaVersions(database)).toEqual(POSTGRES_MIGRATIONS.map((_, index) => index + 1));
    const [first, second] = await Promise.all([
      postJson(`${a}/api/v1/chat/wait`, { message: 'first message', context_id: 'shared' }),
      postJson(`${b}/api/v1/chat/wait`, { message: 'second message', context_id: 'shared' }),
    ]);
    expect([first.status, second.status].sort()).toEqual([200, 409]);
    expect([first, second].find((response) => response.status === 409)!.body).toMatchObject({ error_code: 'CONVERSATION_BUSY' });
    expect(await turnStatuses(database, 'shared')).toEqual(['complete']);
  });

  it('start one generation for the same retried send reaching two instances', async () => {
    const database = await createTestDatabase('retry');
    const [a, b] = await start(database, 2);
    const send = { message: 'say it once', context_id: 'retried', client_message_id: 'send-1' };
    const both = Promise.all([postJson(`${a}/api/v1/chat/wait`, send), postJson(`${b}/api/v1/chat/wait`, send)]);
    // Sent a third time while one instance generates it: the other cannot attach yet (Redis will), so it is busy, not failed.
    await expect.poll(() => turnStatuses(database, 'retried'), { timeout: 10_000, interval: 50 }).toEqual(['streaming']);
    const streamUrl = (url: string | undefined) =>
      `${url}/api/v1/chat/streaming?message=${encodeURIComponent(send.message)}&context_id=retried&client_message_id=send-1`;
    const [during, streamed] = await Promise.all([
      Promise.all([postJson(`${a}/api/v1/chat/wait`, { ...send }), postJson(`${b}/api/v1/chat/wait`, { ...send })]),
      Promise.all([readSse(streamUrl(a)), readSse(streamUrl(b))]),
    ]);
    // Streaming too: the instance generating it attaches, the other says busy (not that its store failed).
    expect(streamed.map((result) => result.status).sort()).toEqual([200, 409]);
    expect(streamed.find((result) => result.status === 409)!.error).toMatchObject({ error_code: 'CONVERSATION_BUSY' });
    expect(during.map((response) => response.status).sort()).toEqual([200, 409]);
    expect(during.find((response) => response.status === 409)!.body).toMatchObject({ error_code: 'CONVERSATION_BUSY', retryable: true });
    const responses = await both;
    expect(await turnStatuses(database, 'retried')).toEqual(['complete']);
    const answered = responses.find((response) => response.status === 200)!;
    for (const response of responses) {
      if (response.status === 200) expect(response.body.turn_id).toBe(answered.body.turn_id);
      else expect(response.body).toMatchObject({ error_code: 'CONVERSATION_BUSY' });
    }
    // Sent again once it has ended, to either instance: the same answer, from the store.
    for (const url of [a, b])
      expect((await postJson(`${url}/api/v1/chat/wait`, send)).body).toMatchObject({
        turn_id: answered.body.turn_id,
        message: answered.body.message,
      });
  });

  it('after kill -9 of one instance, another marks only its turns interrupted, after the timeout', async () => {
    const database = await createTestDatabase('kill');
    const [a, b] = await start(database, 2);
    const firstToken = (event: { json: { type?: unknown } }) => event.json.type === 'token';
    await readSse(`${a}/api/v1/chat/streaming?message=long&context_id=on-a`, { until: firstToken });
    const onB = readSse(`${b}/api/v1/chat/streaming?message=long&context_id=on-b`);
    servers[0]!.child.kill('SIGKILL');
    await servers[0]!.exited;
    expect(await turnStatuses(database, 'on-a')).toEqual(['streaming']);
    await expect.poll(() => turnStatuses(database, 'on-a'), { timeout: 25_000, interval: 250 }).toEqual(['interrupted']);
    const streamed = await onB;
    expect(streamed.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
    expect(await turnStatuses(database, 'on-b')).toEqual(['complete']);
    expect((await getJson(`${b}/api/v1/conversations/on-a`)).body.turns[0]).toMatchObject({ status: 'interrupted' });
  });

  it('fence a producer paused past the timeout: when it wakes up its answer stops with one retryable error, and its turn stays interrupted', async () => {
    const database = await createTestDatabase('pause');
    // A 100 s answer: the demo model keeps to its schedule, so after a pause it sends at once every token that fell due
    // meanwhile (about 40 a second of the pause, 10-14 s here); the whole answer must be far longer than that for the stop to show.
    const [a] = await start(database, 2, { DEMO_RESPONSE_TOKENS: '4000' });
    const stream = readSse(`${a}/api/v1/chat/streaming?message=long&context_id=paused`);
    await expect.poll(() => turnStatuses(database, 'paused'), { timeout: 5000, interval: 50 }).toEqual(['streaming']);
    servers[0]!.child.kill('SIGSTOP');
    await expect.poll(() => turnStatuses(database, 'paused'), { timeout: 25_000, interval: 250 }).toEqual(['interrupted']);
    servers[0]!.child.kill('SIGCONT');
    const streamed = await stream;
    // The producer's first write after waking up is refused: it stops, and its reader is told to send again (no `end`).
    const types = streamed.events.map((event) => event.json.type);
    expect(types).not.toContain('end');
    expect(types.filter((type) => type === 'error')).toHaveLength(1);
    expect(streamed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    expect(streamed.events.at(-1)!.json.message).toContain('Send the message again');
    // It stopped generating then, far short of the whole answer (4,000 tokens), which no one could store.
    expect(tokensOf(streamed.events).length).toBeLessThan(1000);
    await sleep(500);
    expect(await turnStatuses(database, 'paused')).toEqual(['interrupted']);
    expect(servers[0]!.output().stdout).toContain('another instance took it as interrupted');
  });
});
