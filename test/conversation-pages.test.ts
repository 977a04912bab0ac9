import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationStore, TurnRecord } from '../src/store/conversation-store.js';
import { MemoryConversationStore } from '../src/store/memory-store.js';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

/** Turns of the huge conversation, and the size of each answer: ~48 MB in all, as in the report. */
const HUGE_TURNS = 2000;
const ANSWER_CHARS = 24_000;
/** A generous bound for a liveness probe: a stalled event loop takes seconds, a free one a few milliseconds. */
const PROMPT_MS = 500;

/** Writes a conversation of `turns` long turns straight into a SQLite file (far faster than generating it). */
async function buildHugeConversation(path: string, contextId: string, turns: number): Promise<void> {
  // The store creates the schema; the rows go in with plain SQL, in one transaction.
  await new SqliteConversationStore(path).close();
  const database = new BetterSqlite3(path);
  const now = Date.now();
  database
    .prepare('INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES (?, NULL, ?, ?, ?)')
    .run(contextId, 'Huge', now, now);
  const insert =
    database.prepare(`INSERT INTO turns (turn_id, context_id, sequence, user_message, answer, status, model, created_at, finished_at, token_count)
    VALUES (?, ?, ?, ?, ?, 'complete', 'chatwait-demo', ?, ?, ?)`);
  database.transaction(() => {
    for (let sequence = 1; sequence <= turns; sequence++) {
      const answer = `answer ${sequence} `.padEnd(ANSWER_CHARS, 'lorem ipsum ');
      insert.run(`huge-turn-${sequence}`, contextId, sequence, `question ${sequence}`, answer, now + sequence, now + sequence, 100);
    }
  })();
  database.close();
}

/** Runs `work` while probing `/api/v1/health/live` back to back; resolves with the work's result and the slowest probe. */
async function whileProbingLiveness<T>(url: string, work: () => Promise<T>): Promise<{ result: T; slowestMs: number; probes: number }> {
  let done = false;
  let slowestMs = 0;
  let probes = 0;
  const probing = (async () => {
    while (!done) {
      const started = performance.now();
      const response = await fetch(`${url}/api/v1/health/live`);
      await response.text();
      slowestMs = Math.max(slowestMs, performance.now() - started);
      probes++;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    return { result: await work(), slowestMs, probes };
  } finally {
    done = true;
    await probing;
  }
}

describe('a huge conversation (SQLite, ~48 MB)', () => {
  let server: SpawnedServer;
  let url: string;
  beforeAll(async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chatwait-huge-')), 'chat.db');
    await buildHugeConversation(path, 'huge', HUGE_TURNS);
    expect(statSync(path).size).toBeGreaterThan(40_000_000);
    server = spawnServer({ DATABASE_URL: `sqlite:${path}`, RATE_LIMIT_REQUESTS_PER_MINUTE: '0' });
    url = await server.url;
  }, 120_000);
  afterAll(async () => {
    server.child.kill('SIGKILL');
    await server.exited;
  });

  it('answers /api/v1/health/live promptly while the conversation is fetched', async () => {
    const { result, slowestMs } = await whileProbingLiveness(url, () => getJson(`${url}/api/v1/conversations/huge`));
    expect(result.status).toBe(200);
    expect(slowestMs).toBeLessThan(PROMPT_MS);
    expect(result.body).toMatchObject({ context_id: 'huge', turn_count: HUGE_TURNS });
    expect(result.body.turns.map((turn: { turn_id: string }) => turn.turn_id)).toEqual(
      Array.from({ length: 20 }, (_unused, index) => `huge-turn-${HUGE_TURNS - 19 + index}`),
    );
    expect(typeof result.body.next_cursor).toBe('string');
  });

  it('gives every turn once, in order, to a reader following the cursor to the oldest page', async () => {
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const { status, body } = await getJson(`${url}/api/v1/conversations/huge${query}`);
      expect(status).toBe(200);
      expect(body.turns.length).toBeLessThanOrEqual(20);
      pages.push(body.turns.map((turn: { turn_id: string }) => turn.turn_id));
      cursor = body.next_cursor;
    } while (cursor);
    expect(pages).toHaveLength(HUGE_TURNS / 20);
    expect(pages.reverse().flat()).toEqual(Array.from({ length: HUGE_TURNS }, (_unused, index) => `huge-turn-${index + 1}`));
  }, 60_000);
});

describe('turn pages', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ DEMO_RESPONSE_TOKENS: '3' });
  });
  afterAll(() => server.close());

  it('refuses a limit above the maximum, and a cursor the server never gave, with 422', async () => {
    await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hello', context_id: 'paged' });
    const tooMany = await getJson(`${server.url}/api/v1/conversations/paged?limit=101`);
    expect(tooMany.status).toBe(422);
    expect(tooMany.body).toMatchObject({ error_code: 'VALIDATION_ERROR', detail: [{ loc: ['query', 'limit'] }] });
    const forged = await getJson(`${server.url}/api/v1/conversations/paged?cursor=not-a-cursor`);
    expect(forged.status).toBe(422);
    expect(forged.body).toMatchObject({ error_code: 'VALIDATION_ERROR', detail: [{ loc: ['query', 'cursor'] }] });
    expect((await getJson(`${server.url}/api/v1/conversations/paged?limit=100`)).status).toBe(200);
  });

  it('pages a conversation newest first, each page oldest first, until next_cursor is null', async () => {
    const sent: string[] = [];
    for (let index = 0; index < 5; index++) {
      sent.push((await postJson(`${server.url}/api/v1/chat/wait`, { message: `message ${index}`, context_id: 'five' })).body.turn_id);
    }
    const first = await getJson(`${server.url}/api/v1/conversations/five?limit=2`);
    expect(first.body.turns.map((turn: { turn_id: string }) => turn.turn_id)).toEqual(sent.slice(3));
    const second = await getJson(`${server.url}/api/v1/conversations/five?limit=2&cursor=${first.body.next_cursor}`);
    expect(second.body.turns.map((turn: { turn_id: string }) => turn.turn_id)).toEqual(sent.slice(1, 3));
    const last = await getJson(`${server.url}/api/v1/conversations/five?limit=2&cursor=${second.body.next_cursor}`);
    expect(last.body).toMatchObject({ turn_count: 5, next_cursor: null });
    expect(last.body.turns.map((turn: { turn_id: string }) => turn.turn_id)).toEqual(sent.slice(0, 1));
    const whole = await getJson(`${server.url}/api/v1/conversations/five`);
    expect(whole.body).toMatchObject({ next_cursor: null });
    expect(whole.body.turns).toHaveLength(5);
  });
});

/** A real store that counts the turns its reads hand out: what a request made the server load. */
function countingTurnsRead(store: ConversationStore): { store: ConversationStore; turnsRead: number } {
  const counter = { store: undefined as unknown as ConversationStore, turnsRead: 0 };
  const count = (value: unknown): number => {
    if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + count(item), 0);
    if (value && typeof value === 'object' && 'turnId' in value) return 1;
    if (value && typeof value === 'object' && 'turns' in value) return count((value as { turns: TurnRecord[] }).turns);
    return 0;
  };
  counter.store = new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const result = await (value as (...parameters: unknown[]) => Promise<unknown>).apply(target, args);
        if (property !== 'startTurn') counter.turnsRead += count(result);
        return result;
      };
    },
  });
  return counter;
}

describe('the history of a new turn', () => {
  it('is the newest turns the budget keeps, read without loading the rest of the conversation', async () => {
    const fake = await startFakeOpenAI();
    const counter = countingTurnsRead(new MemoryConversationStore());
    const server = await startTestServer(
      { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model', HISTORY_MAX_MESSAGES: '4' },
      { store: counter.store },
    );
    try {
      for (let index = 1; index <= 30; index++) {
        await counter.store.startTurn({
          turnId: `old-${index}`,
          contextId: 'long',
          userMessage: `question ${index}`,
          model: 'fake-model',
          clientMessageId: undefined,
          owner: null,
        });
        await counter.store.finishTurn(`old-${index}`, {
          status: 'complete',
          answer: `answer ${index}`,
          usage: undefined,
          timings: undefined,
          errorCode: undefined,
          tokenCount: 2,
        });
      }
      counter.turnsRead = 0;
      const answer = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'question 31', context_id: 'long' });
      expect(answer.status).toBe(200);
      const sent = fake.requests
        .at(-1)!
        .body.messages!.slice(1)
        .map((message) => message.content);
      expect(sent).toEqual(['question 29', 'answer 29', 'question 30', 'answer 30', 'question 31']);
      // The two turns of the window, and the wait route's own look at the new turn; never the 30 of the conversation.
      expect(counter.turnsRead).toBeLessThanOrEqual(4);
    } finally {
      await server.close();
      await fake.close();
    }
  });
});
