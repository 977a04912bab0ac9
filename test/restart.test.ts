import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSse, tokensOf } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { getJson, postJson } from './support/test-server.js';

const servers: SpawnedServer[] = [];

/** Starts the compiled server on a database file and resolves with its URL once it listens. */
async function startServer(databasePath: string) {
  const server = spawnServer({ DATABASE_URL: `sqlite:${databasePath}`, DEMO_TOKENS_PER_SECOND: '50' });
  servers.push(server);
  return { url: await server.url, child: server.child };
}

afterEach(() => {
  for (const server of servers.splice(0)) server.child.kill('SIGKILL');
});

describe('a crash mid-stream (SIGKILL) on SQLite', () => {
  it('keeps every ended turn intact and marks the in-flight one interrupted after a restart', async () => {
    const databasePath = join(mkdtempSync(join(tmpdir(), 'chatwait-restart-')), 'chat.db');
    const first = await startServer(databasePath);
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

    const second = await startServer(databasePath);
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
    const databasePath = join(mkdtempSync(join(tmpdir(), 'chatwait-restart-')), 'chat.db');
    const first = await startServer(databasePath);
    const partial = await readSse(
      `${first.url}/api/v1/chat/streaming?message=${encodeURIComponent('long one, 2000 tokens')}&context_id=counted`,
      {
        until: (_event, events) => events.filter((event) => event.json.type === 'token').length === 80,
      },
    );
    first.child.kill('SIGKILL');
    await new Promise((resolveExit) => first.child.once('exit', resolveExit));

    const second = await startServer(databasePath);
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
