import { afterEach, describe, expect, it } from 'vitest';
import { instanceIds, onPostgres, processDatabaseUrl, TEST_INSTANCE_TIMEOUT_SECONDS } from './support/process-store.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { getJson, postJson } from './support/test-server.js';

// SQLite in the main project; PostgreSQL in the postgres project (vitest.config.ts), a new database per test.
const postgres = onPostgres();
const servers: SpawnedServer[] = [];

/** Starts the compiled server on a database and resolves with its URL once it listens. */
async function startServer(databaseUrl: string) {
  const server = spawnServer({
    DATABASE_URL: databaseUrl,
    DEMO_TOKENS_PER_SECOND: '50',
    INSTANCE_TIMEOUT_SECONDS: String(TEST_INSTANCE_TIMEOUT_SECONDS),
  });
  servers.push(server);
  return { url: await server.url, child: server.child };
}

/** The status of a conversation's newest turn, as the server reports it. */
async function latestStatus(url: string, contextId: string): Promise<string> {
  return (await getJson(`${url}/api/v1/conversations/${contextId}`)).body.turns.at(-1).status;
}

/**
 * Waits until the restarted server holds the crashed turn as `interrupted`. SQLite has one process: the
 * restart marks it at once. On PostgreSQL the restarted process is a new instance, and the crashed one
 * could be another live instance for all the database knows: its turn stays `streaming` (a send to the
 * conversation is busy) until its heartbeat is older than INSTANCE_TIMEOUT_SECONDS, then it is reaped.
 */
async function crashedTurnSettles(databaseUrl: string, url: string, contextId: string) {
  if (!postgres) return;
  expect(await instanceIds(databaseUrl)).toHaveLength(2);
  expect(await latestStatus(url, contextId)).toBe('streaming');
  const busy = await postJson(`${url}/api/v1/chat/wait`, { message: 'too soon, 5 tokens', context_id: contextId });
  expect(busy).toMatchObject({ status: 409, body: { error_code: 'CONVERSATION_BUSY' } });
  await expect
    .poll(() => latestStatus(url, contextId), { timeout: (2 * TEST_INSTANCE_TIMEOUT_SECONDS + 5) * 1000, interval: 200 })
    .toBe('interrupted');
}

afterEach(() => {
  for (const server of servers.splice(0)) server.child.kill('SIGKILL');
});

describe(`a crash mid-stream (SIGKILL) on ${postgres ? 'PostgreSQL' : 'SQLite'}`, { timeout: 60_000 }, () => {
  it('keeps every ended turn intact and marks the in-flight one interrupted after a restart', async () => {
    const database = await processDatabaseUrl('sqlite');
    const first = await startServer(database);
    const finished = await postJson(`${first.url}/api/v1/chat/wait`, { message: 'quick one, 5 tokens', context_id: 'crash' });
    expect(finished.status).toBe(200);

    // 80 tokens at 50 tokens/s take over a second, so at least one batched progress write has happened.
    const partial = await readSse(
      `${first.url}/api/v1/chat/streaming?message=${encodeURIComponent('long one, 2000 tokens')}&context_id=crash`,
      {
        until: (_event, events) => events.filter((event) => event.json.type === 'token').length === 80,
      },
    );
    first.child.kill('SIGKILL');
    await new Promise((resolveExit) => first.child.once('exit', resolveExit));

    const second = await startServer(database);
    await crashedTurnSettles(database, second.url, 'crash');
    const conversation = (await getJson(`${second.url}/api/v1/conversations/crash`)).body;
    expect(conversation.turns).toHaveLength(2);
    expect(conversation.turns[0]).toMatchObject({
      status: 'complete',
      answer: finished.body.message,
      token_count: finished.body.token_count,
    });
    const interrupted = conversation.turns[1];
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.answer.length).toBeGreaterThan(0);
    expect(tokensOf(partial.events).join('').startsWith(interrupted.answer)).toBe(true);

    const resync = await readSse(`${second.url}/api/v1/chat/streaming?message=x&context_id=crash`, {
      headers: { 'last-event-id': `${interrupted.turn_id}/10` },
    });
    expect(resync.events.map((event) => event.json.type)).toEqual(['start', 'resync', 'end']);
    expect(resync.events[2]!.json).toMatchObject({ finish_reason: 'interrupted', final_output: interrupted.answer });

    const next = await postJson(`${second.url}/api/v1/chat/wait`, { message: 'still usable? 5 tokens', context_id: 'crash' });
    expect(next.status).toBe(200);
  });

  it('keeps the token count of a turn it interrupted, and a resume reports that count', async () => {
    const database = await processDatabaseUrl('sqlite');
    const first = await startServer(database);
    const partial = await readSse(
      `${first.url}/api/v1/chat/streaming?message=${encodeURIComponent('long one, 2000 tokens')}&context_id=counted`,
      {
        until: (_event, events) => events.filter((event) => event.json.type === 'token').length === 80,
      },
    );
    first.child.kill('SIGKILL');
    await new Promise((resolveExit) => first.child.once('exit', resolveExit));

    const second = await startServer(database);
    await crashedTurnSettles(database, second.url, 'counted');
    const [interrupted] = (await getJson(`${second.url}/api/v1/conversations/counted`)).body.turns;
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.token_count).toBeGreaterThan(0);
    // The stored count is the count of the stored answer: exactly its first tokens as streamed (the last
    // save may have come after the reader stopped, with tokens it did not read).
    const streamed = tokensOf(partial.events);
    const covered = Math.min(streamed.length, interrupted.token_count);
    expect(interrupted.answer.startsWith(streamed.slice(0, covered).join(''))).toBe(true);
    if (interrupted.token_count <= streamed.length) expect(streamed.slice(0, covered).join('')).toBe(interrupted.answer);

    const resync = await readSse(`${second.url}/api/v1/chat/streaming?message=x&context_id=counted`, {
      headers: { 'last-event-id': `${interrupted.turn_id}/start` },
    });
    expect(resync.events.map((event) => event.json.type)).toEqual(['start', 'resync', 'end']);
    expect(resync.events[1]!.json).toMatchObject({ token_count: interrupted.token_count, final_output: interrupted.answer });
    expect(resync.events[2]!.json).toMatchObject({ token_count: interrupted.token_count, finish_reason: 'interrupted' });
    expect(resync.events[2]!.id).toBe(`${interrupted.turn_id}/${interrupted.token_count}`);
  });
});
