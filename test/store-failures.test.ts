import { closeSync, mkdtempSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConversationStore } from '../src/store/conversation-store.js';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { toStoreError } from '../src/store/open-sqlite-store.js';
import { readSse, tokensOf, type ReadSseOptions } from './support/sse-client.js';
import { spawnServer } from './support/spawn-server.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** A streaming send as a JSON body (the GET form has no client_message_id). */
const streamPost = (url: string, body: Record<string, unknown>, options: ReadSseOptions = {}) =>
  readSse(`${url}/api/v1/chat/streaming`, {
    ...options,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

const databasePath = () => join(mkdtempSync(join(tmpdir(), 'chatwait-store-failure-')), 'chat.db');

/** The operations that write; while `full` is set they fail as SQLite does on a full disk. */
const WRITES = new Set(['startTurn', 'saveProgress', 'finishTurn', 'renameConversation', 'deleteConversation']);

/** The real SQLite store behind a switch that makes its writes fail with SQLITE_FULL, as a full disk would. */
function diskThatFills(store: SqliteConversationStore): { store: ConversationStore; full: boolean } {
  const disk = { store: undefined as unknown as ConversationStore, full: false };
  disk.store = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (disk.full && WRITES.has(String(property))) {
          // As the store itself reports it: SQLite's SQLITE_FULL, turned into STORE_UNAVAILABLE.
          return Promise.reject(toStoreError(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
        }
        return (value as (...parameters: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return disk;
}

/** Overwrites the root pages of the conversations and turns tables, after moving every commit into the main file; returns how to undo it. */
function damageTables(path: string): () => void {
  const database = new BetterSqlite3(path);
  database.pragma('wal_checkpoint(TRUNCATE)');
  const pageSize = database.pragma('page_size', { simple: true }) as number;
  const roots = (
    database.prepare("SELECT rootpage FROM sqlite_master WHERE name IN ('conversations', 'turns')").all() as { rootpage: number }[]
  ).map((row) => row.rootpage);
  database.close();
  const descriptor = openSync(path, 'r+');
  const saved = roots.map((root) => {
    const page = Buffer.alloc(pageSize);
    readSync(descriptor, page, 0, pageSize, (root - 1) * pageSize);
    writeSync(descriptor, Buffer.alloc(pageSize, 0xab), 0, pageSize, (root - 1) * pageSize);
    return { root, page };
  });
  closeSync(descriptor);
  return () => {
    const restoring = openSync(path, 'r+');
    for (const { root, page } of saved) writeSync(restoring, page, 0, pageSize, (root - 1) * pageSize);
    closeSync(restoring);
    // A commit from another connection makes the server's connection drop the pages it had cached.
    const writer = new BetterSqlite3(path);
    writer.pragma('user_version = 1');
    writer.close();
  };
}

describe('a disk that fills mid-answer', () => {
  it('ends the stream with a retryable STORE_UNAVAILABLE error, reports degraded, then stores the turn as it really ended once writes work again', async () => {
    const real = new SqliteConversationStore(databasePath());
    const disk = diskThatFills(real);
    const server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '200' }, { store: disk.store });
    servers.push(server);
    const send = { message: 'answer in 60 tokens', context_id: 'full-disk', client_message_id: 'send-1' };

    const streamed = await streamPost(server.url, send, {
      until: (event) => {
        if (event.json.type === 'token' && event.json.token_index === 10) disk.full = true;
        return false;
      },
    });
    const last = streamed.events.at(-1)!.json;
    expect(streamed.events.some((event) => event.json.type === 'end')).toBe(false);
    expect(last).toMatchObject({ type: 'error', error_code: 'STORE_UNAVAILABLE', retryable: true });
    const tokens = tokensOf(streamed.events);
    expect(tokens.length).toBeGreaterThan(10);

    const degraded = await getJson(`${server.url}/health`);
    expect(degraded.body).toMatchObject({ status: 'degraded', checks: { store: { status: 'error' } } });
    expect((await getJson(`${server.url}/api/v1/health/ready`)).status).toBe(503);
    expect((await real.latestTurn('full-disk'))!.status).toBe('streaming');

    disk.full = false;
    const healthy = await getJson(`${server.url}/health`);
    expect(healthy.body).toMatchObject({ status: 'healthy', checks: { store: { status: 'ok' } } });
    expect((await getJson(`${server.url}/api/v1/health/ready`)).status).toBe(200);
    // The answer had ended well: it is stored whole, as `complete`, not as `interrupted`.
    const stored = await real.latestTurn('full-disk');
    expect(stored).toMatchObject({ status: 'complete', errorCode: undefined, answer: tokens.join(''), tokenCount: tokens.length });
    expect(stored!.timings!.total_ms).toBeGreaterThan(0);
    // The same send again replays that stored answer and its end, not the error its first reader got.
    const resent = await streamPost(server.url, send);
    expect(resent.events.map((event) => event.json.type)).toEqual(['start', 'resync', 'end']);
    expect(resent.events.at(-1)!.json).toMatchObject({ final_output: tokens.join(''), finish_reason: 'stop', token_count: tokens.length });
    const next = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'still usable? 5 tokens', context_id: 'full-disk' });
    expect(next.status).toBe(200);
  });

  it('answers a wait request whose answer cannot be stored with 503 STORE_UNAVAILABLE, and the same send with the answer once it is stored', async () => {
    const real = new SqliteConversationStore(databasePath());
    const disk = diskThatFills(real);
    const server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '200' }, { store: disk.store });
    servers.push(server);
    const body = { message: 'answer in 60 tokens', context_id: 'full-wait', client_message_id: 'send-1' };
    const waiting = postJson(`${server.url}/api/v1/chat/wait`, body);
    await expect.poll(async () => (await real.latestTurn('full-wait'))?.status).toBe('streaming');
    disk.full = true;
    const response = await waiting;
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true });

    disk.full = false;
    expect((await getJson(`${server.url}/health`)).body.status).toBe('healthy');
    const stored = await real.latestTurn('full-wait');
    expect(stored).toMatchObject({ status: 'complete', errorCode: undefined });
    expect(stored!.usage).toBeDefined();
    // The same send again gets the answer that was kept until the store took it.
    const retried = await postJson(`${server.url}/api/v1/chat/wait`, body);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ turn_id: stored!.turnId, message: stored!.answer, finish_reason: 'stop' });
  });
});

describe("a send while its conversation's last outcome waits for the store", () => {
  it('answers 503 STORE_UNAVAILABLE with Retry-After, to the same send and to a new message, and a resume gets that error rather than "interrupted"', async () => {
    const real = new SqliteConversationStore(databasePath());
    const disk = diskThatFills(real);
    const server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '200' }, { store: disk.store });
    servers.push(server);
    const body = { message: 'answer in 60 tokens', context_id: 'still-pending', client_message_id: 'send-1' };
    const waiting = postJson(`${server.url}/api/v1/chat/wait`, body);
    await expect.poll(async () => (await real.latestTurn('still-pending'))?.status).toBe('streaming');
    disk.full = true;
    expect((await waiting).status).toBe(503);

    // The disk is still full: the stored turn is still `streaming`, its outcome held in memory.
    const retried = await postJson(`${server.url}/api/v1/chat/wait`, body);
    expect(retried.status).toBe(503);
    expect(retried.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true });
    expect(retried.headers.get('retry-after')).toMatch(/^\d+$/);
    // Streaming the same send is refused the same way, not answered with a replay of how its first reader's stream ended.
    const restreamed = await streamPost(server.url, body);
    expect(restreamed.status).toBe(503);
    expect(restreamed.error).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true });
    // A new message to the conversation: the store is what refuses, not a turn still generating.
    const other = { message: 'another question', context_id: 'still-pending', client_message_id: 'send-2' };
    const refused = await postJson(`${server.url}/api/v1/chat/wait`, other);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true });
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    const refusedStream = await streamPost(server.url, other);
    expect(refusedStream.status).toBe(503);
    expect(refusedStream.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refusedStream.error).toMatchObject({ error_code: 'STORE_UNAVAILABLE' });
    const { turnId } = (await real.latestTurn('still-pending'))!;
    const resumed = await readSse(`${server.url}/api/v1/chat/streaming?message=x&context_id=still-pending`, {
      headers: { 'last-event-id': `${turnId}/resync` },
    });
    expect(resumed.events.map((event) => event.json.type)).toEqual(['start', 'error']);
    expect(resumed.events.at(-1)!.json).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true, turn_id: turnId });
    // A cancel of it: it ended, its outcome not stored yet, so the store's 503 at once (never `streaming`, nor a wait).
    const cancel = await postJson(`${server.url}/api/v1/chat/turns/${turnId}/cancel`, {});
    expect(cancel.status).toBe(503);
    expect(cancel.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE', retryable: true });

    // Writes work again: the new message itself gets the pending outcome stored first, then starts.
    disk.full = false;
    const answered = await postJson(`${server.url}/api/v1/chat/wait`, { ...other, message: 'another question, 5 tokens' });
    expect(answered.status).toBe(200);
    expect((await real.getConversation('still-pending'))!.turns.map((turn) => turn.status)).toEqual(['complete', 'complete']);
    // Stored now: the cancel is answered with how it really ended.
    expect((await postJson(`${server.url}/api/v1/chat/turns/${turnId}/cancel`, {})).body).toMatchObject({
      turn_id: turnId,
      status: 'complete',
    });
  });
});

describe('a SQLite file damaged while the server runs', () => {
  it('reports degraded and not ready, refuses sends with 503, and recovers by itself once the file is sound again', async () => {
    const path = databasePath();
    const server = await startTestServer({ DATABASE_URL: `sqlite:${path}`, DEMO_RESPONSE_TOKENS: '5' });
    servers.push(server);
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hello', context_id: 'damaged' })).status).toBe(200);
    expect((await getJson(`${server.url}/health`)).body.status).toBe('healthy');

    const restore = damageTables(path);
    const health = await getJson(`${server.url}/health`);
    expect(health.body).toMatchObject({ status: 'degraded', checks: { store: { status: 'error' } } });
    expect(JSON.stringify(health.body)).not.toMatch(/malformed|SQLITE/);
    const ready = await getJson(`${server.url}/api/v1/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.reason).toContain('store');
    const send = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hello again', context_id: 'damaged' });
    expect(send.status).toBe(503);
    expect(send.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE' });

    restore();
    expect((await getJson(`${server.url}/health`)).body.status).toBe('healthy');
    expect((await getJson(`${server.url}/api/v1/health/ready`)).status).toBe(200);
  });
});

describe('start-up on a damaged SQLite file', () => {
  it('fails at once with one line naming DATABASE_URL, for damaged pages and for a file that is no database', async () => {
    const damagedPath = databasePath();
    const store = new SqliteConversationStore(damagedPath);
    await store.startTurn({ turnId: 't1', contextId: 'c1', userMessage: 'hello', model: 'm', clientMessageId: undefined, owner: null });
    await store.close();
    damageTables(damagedPath);
    const notDatabase = databasePath();
    writeFileSync(notDatabase, 'this is not a database, just some text that is long enough to be read as a header '.repeat(100));

    for (const path of [damagedPath, notDatabase]) {
      const server = spawnServer({ DATABASE_URL: `sqlite:${path}` });
      expect(await server.exited).toBe(1);
      const { stderr } = server.output();
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain(`DATABASE_URL: ${path} is not a valid SQLite database`);
      expect(stderr).not.toMatch(/^\s+at /m);
    }
  });
});
