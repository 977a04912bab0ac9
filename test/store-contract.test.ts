import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TurnConflictError, TurnFencedError, type ConversationStore, type NewTurn } from '../src/store/conversation-store.js';
import { turnStatusSchema } from '../src/protocol/turn.js';
import { MemoryConversationStore } from '../src/store/memory-store.js';
import { openSqliteStore } from '../src/store/open-sqlite-store.js';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { PostgresConversationStore } from '../src/store/postgres-store.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';

/**
 * A store backend: how to make an empty store, and how to "restart the process" on it (the same data,
 * opened again as a new process would; memory has no other process, so it is the same store).
 */
interface Backend {
  create(): ConversationStore | Promise<ConversationStore>;
  restart(store: ConversationStore): Promise<ConversationStore>;
}

const sqliteFiles = new WeakMap<ConversationStore, string>();
const postgresUrls = new WeakMap<ConversationStore, string>();
// A short instance timeout: a restarted PostgreSQL "process" judges the one before it at once.
const openPostgres = async (url: string) => {
  const store = await PostgresConversationStore.open(url, { instanceTimeoutMs: 1000 });
  postgresUrls.set(store, url);
  return store;
};

/** Every store backend, each run through the same contract (PostgreSQL: a new database per test). */
const backends: [string, Backend][] = [
  ['memory', { create: () => new MemoryConversationStore(), restart: async (store) => store }],
  [
    'sqlite',
    {
      create: () => {
        const path = join(mkdtempSync(join(tmpdir(), 'chatwait-store-')), 'chat.db');
        const store = new SqliteConversationStore(path);
        sqliteFiles.set(store, path);
        return store;
      },
      restart: async (store) => {
        await store.close();
        const reopened = new SqliteConversationStore(sqliteFiles.get(store)!);
        sqliteFiles.set(reopened, sqliteFiles.get(store)!);
        return reopened;
      },
    },
  ],
  ...(hasPostgres()
    ? [
        [
          'postgres',
          {
            create: async () => openPostgres(await createTestDatabase('store')),
            restart: async (store: ConversationStore) => {
              await store.close();
              return openPostgres(postgresUrls.get(store)!);
            },
          },
        ] as [string, Backend],
      ]
    : []),
];

let sequence = 0;
const newTurn = (contextId: string, overrides: Partial<NewTurn> = {}): NewTurn => ({
  turnId: `turn-${++sequence}`,
  contextId,
  userMessage: `message ${sequence}`,
  model: 'test-model',
  clientMessageId: undefined,
  owner: null,
  ...overrides,
});

const ENDED = { status: 'complete', answer: 'done', usage: undefined, timings: undefined, errorCode: undefined, tokenCount: 1 } as const;

describe.each(backends)('the %s conversation store', (name, { create, restart }) => {
  let store: ConversationStore;
  /** Starts a turn and ends it, so the conversation can take the next one. */
  const answered = async (turn: NewTurn) => {
    const record = await store.startTurn(turn);
    await store.finishTurn(record.turnId, ENDED);
    return record;
  };
  beforeEach(async () => {
    store = await create();
  });
  afterEach(() => store.close());

  it('creates a conversation on its first turn, titled from the message', async () => {
    const turn = await store.startTurn(newTurn('c1', { userMessage: '  How do   streams\nwork?  ' }));
    expect(turn).toMatchObject({ contextId: 'c1', status: 'streaming', answer: '', tokenCount: 0 });
    const conversation = await store.getConversation('c1');
    expect(conversation).toMatchObject({ contextId: 'c1', title: 'How do streams work?', turnCount: 1 });
    expect(conversation!.turns).toHaveLength(1);
  });

  it('shortens a long title', async () => {
    await store.startTurn(newTurn('c1', { userMessage: 'word '.repeat(40) }));
    const title = (await store.getConversation('c1'))!.title;
    expect([...title].length).toBeLessThanOrEqual(60);
    expect(title.endsWith('…')).toBe(true);
  });

  it('saves progress, then the whole outcome of a turn', async () => {
    const { turnId } = await store.startTurn(newTurn('c1'));
    await store.saveProgress(turnId, 'Hello', 1);
    expect((await store.getTurn(turnId))!.answer).toBe('Hello');
    await store.finishTurn(turnId, {
      status: 'complete',
      answer: 'Hello world',
      usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5 },
      timings: { ttft_ms: 1.5, total_ms: 9 },
      errorCode: undefined,
      tokenCount: 2,
    });
    const turn = await store.getTurn(turnId);
    expect(turn).toMatchObject({
      status: 'complete',
      answer: 'Hello world',
      tokenCount: 2,
      usage: { input_tokens: 3, output_tokens: 2, total_tokens: 5 },
      timings: { ttft_ms: 1.5, total_ms: 9 },
    });
    expect(turn!.finishedAt).toBeInstanceOf(Date);
  });

  it('refuses progress and a second outcome of a turn that is no longer streaming, changing nothing', async () => {
    const ended = await answered(newTurn('c1'));
    const before = await store.getTurn(ended.turnId);
    await expect(store.saveProgress(ended.turnId, 'late progress', 3)).rejects.toBeInstanceOf(TurnFencedError);
    await expect(store.finishTurn(ended.turnId, { ...ENDED, status: 'interrupted', answer: 'late' })).rejects.toBeInstanceOf(
      TurnFencedError,
    );
    expect(await store.getTurn(ended.turnId)).toEqual(before);

    // Marked interrupted by the next process: the one that was generating it may not overwrite that.
    const left = await store.startTurn(newTurn('c2'));
    await store.saveProgress(left.turnId, 'half', 1);
    store = await restart(store);
    await store.markInterrupted();
    await expect(store.saveProgress(left.turnId, 'half and more', 2)).rejects.toBeInstanceOf(TurnFencedError);
    await expect(store.finishTurn(left.turnId, { ...ENDED, answer: 'half and more', tokenCount: 2 })).rejects.toMatchObject({
      name: 'TurnFencedError',
      turnId: left.turnId,
    });
    expect(await store.getTurn(left.turnId)).toMatchObject({ status: 'interrupted', answer: 'half', tokenCount: 1 });

    // Its conversation deleted: nothing to write to.
    const deleted = await store.startTurn(newTurn('c3'));
    await store.deleteConversation('c3');
    await expect(store.saveProgress(deleted.turnId, 'x', 1)).rejects.toBeInstanceOf(TurnFencedError);
    await expect(store.finishTurn(deleted.turnId, ENDED)).rejects.toBeInstanceOf(TurnFencedError);
    expect(await store.getConversation('c3')).toBeUndefined();
  });

  it('fails only the refused write among writes made at once (SQLite commits them as one batch)', async () => {
    const ended = await answered(newTurn('c1'));
    const generating = await store.startTurn(newTurn('c2'));
    const other = await store.startTurn(newTurn('c3'));
    const writes = await Promise.allSettled([
      store.saveProgress(generating.turnId, 'partial', 1),
      store.finishTurn(ended.turnId, { ...ENDED, answer: 'again' }),
      store.finishTurn(other.turnId, { ...ENDED, answer: 'other done' }),
    ]);
    expect(writes.map((write) => write.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((writes[1] as PromiseRejectedResult).reason).toBeInstanceOf(TurnFencedError);
    expect(await store.getTurn(generating.turnId)).toMatchObject({ status: 'streaming', answer: 'partial', tokenCount: 1 });
    expect(await store.getTurn(ended.turnId)).toMatchObject({ status: 'complete', answer: 'done' });
    expect(await store.getTurn(other.turnId)).toMatchObject({ status: 'complete', answer: 'other done' });
  });

  it('stores a turn ending in every status the protocol names', async () => {
    for (const status of turnStatusSchema.options.filter((option) => option !== 'streaming')) {
      const { turnId } = await store.startTurn(newTurn(`ended-${status}`));
      expect((await store.getTurn(turnId))!.status).toBe('streaming');
      await store.finishTurn(turnId, {
        status,
        answer: status,
        usage: undefined,
        timings: undefined,
        errorCode: status === 'error' ? 'UPSTREAM_ERROR' : undefined,
        tokenCount: 1,
      });
      expect((await store.getTurn(turnId))!.status).toBe(status);
    }
  });

  it('keeps turns in order and finds the latest one', async () => {
    const first = await answered(newTurn('c1'));
    const second = await store.startTurn(newTurn('c1'));
    expect((await store.latestTurn('c1'))!.turnId).toBe(second.turnId);
    expect((await store.getConversation('c1'))!.turns.map((turn) => turn.turnId)).toEqual([first.turnId, second.turnId]);
    expect(await store.latestTurn('nope')).toBeUndefined();
  });

  it('finds a turn by its client_message_id within its conversation', async () => {
    const turn = await store.startTurn(newTurn('c1', { clientMessageId: 'send-1' }));
    expect((await store.findTurnByClientMessageId('c1', 'send-1'))!.turnId).toBe(turn.turnId);
    expect(await store.findTurnByClientMessageId('c2', 'send-1')).toBeUndefined();
  });

  it('lists conversations newest first, a page at a time', async () => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await answered(newTurn(id));
    await store.startTurn(newTurn('b'));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.listConversations({ owner: null, limit: 2, cursor });
      expect(page.conversations.length).toBeLessThanOrEqual(2);
      seen.push(...page.conversations.map((conversation) => conversation.contextId));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['b', 'e', 'd', 'c', 'a']);
  });

  it('ignores a cursor that is not one of its own', async () => {
    await store.startTurn(newTurn('a'));
    const page = await store.listConversations({ owner: null, limit: 10, cursor: 'garbage' });
    expect(page.conversations.map((conversation) => conversation.contextId)).toEqual(['a']);
  });

  it('keeps each owner to its own conversations', async () => {
    await store.startTurn(newTurn('mine', { owner: 'key-a' }));
    await store.startTurn(newTurn('theirs', { owner: 'key-b' }));
    await store.startTurn(newTurn('open', { owner: null }));
    const ids = async (owner: string | null) =>
      (await store.listConversations({ owner, limit: 10 })).conversations.map((conversation) => conversation.contextId);
    expect(await ids('key-a')).toEqual(['mine']);
    expect(await ids('key-b')).toEqual(['theirs']);
    expect(await ids(null)).toEqual(['open']);
    expect(await store.conversationOwner('mine')).toBe('key-a');
    expect(await store.conversationOwner('open')).toBeNull();
    expect(await store.conversationOwner('nothing')).toBeUndefined();
    expect((await store.getConversation('theirs'))!.owner).toBe('key-b');
  });

  it('renames and deletes conversations', async () => {
    const { turnId } = await store.startTurn(newTurn('c1'));
    expect(await store.renameConversation('c1', 'New title')).toMatchObject({ contextId: 'c1', title: 'New title', turnCount: 1 });
    expect(await store.renameConversation('nope', 'x')).toBeUndefined();
    expect(await store.deleteConversation('c1')).toBe(true);
    expect(await store.deleteConversation('c1')).toBe(false);
    expect(await store.getConversation('c1')).toBeUndefined();
    expect(await store.getTurn(turnId)).toBeUndefined();
  });

  it('marks turns left streaming by a process that died as interrupted, keeping their partial answers', async () => {
    const done = await store.startTurn(newTurn('c1'));
    await store.finishTurn(done.turnId, {
      status: 'complete',
      answer: 'ok',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 1,
    });
    const left = await store.startTurn(newTurn('c1'));
    await store.saveProgress(left.turnId, 'half an', 2);
    // The process that was generating it dies; the next one recovers.
    store = await restart(store);
    expect(await store.markInterrupted()).toBe(1);
    expect(await store.getTurn(left.turnId)).toMatchObject({ status: 'interrupted', answer: 'half an', tokenCount: 2 });
    expect(await store.getTurn(done.turnId)).toMatchObject({ status: 'complete', answer: 'ok' });
  });

  it("reaps inline a conversation's generating turn only when the instance generating it is gone", async () => {
    const left = await store.startTurn(newTurn('c1'));
    await store.saveProgress(left.turnId, 'half an', 2);
    const other = await store.startTurn(newTurn('c2'));
    // Its instance (this one) lives: nothing to reap.
    expect(await store.reapAbandonedTurn('c1')).toBeUndefined();
    expect(await store.getTurn(left.turnId)).toMatchObject({ status: 'streaming' });
    // The process that was generating them is gone. Only PostgreSQL has other instances' turns to judge;
    // a store only one process uses leaves that to its restart's markInterrupted.
    store = await restart(store);
    const reaped = await store.reapAbandonedTurn('c1');
    if (name === 'postgres') {
      expect(reaped).toBe(left.turnId);
      expect(await store.getTurn(left.turnId)).toMatchObject({ status: 'interrupted', answer: 'half an', tokenCount: 2 });
      expect(await store.getTurn(other.turnId)).toMatchObject({ status: 'streaming' });
      expect(await store.reapAbandonedTurn('c1')).toBeUndefined();
    } else {
      expect(reaped).toBeUndefined();
      expect(await store.getTurn(left.turnId)).toMatchObject({ status: 'streaming' });
    }
    expect(await store.reapAbandonedTurn('no-such-conversation')).toBeUndefined();
  });

  it('keeps text exactly, Unicode and whitespace included', async () => {
    const text = 'Zürich 👋\n\n\t  "quotes" \\ and \u0000 nul';
    const { turnId } = await store.startTurn(newTurn('c1', { userMessage: text }));
    await store.finishTurn(turnId, {
      status: 'complete',
      answer: text,
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 1,
    });
    expect(await store.getTurn(turnId)).toMatchObject({ userMessage: text, answer: text });
  });

  it("keeps a turn's tool steps, saved with its progress and with its outcome", async () => {
    const { turnId } = await store.startTurn(newTurn('c1'));
    expect((await store.getTurn(turnId))!.toolSteps).toEqual([]);
    const running = {
      callId: 'call_1',
      name: 'calculate',
      arguments: '{"expression":"1+1"}',
      output: null,
      isError: false,
      durationMs: null,
      tokenOffset: 0,
    };
    await store.saveProgress(turnId, '', 0, [running]);
    expect((await store.getTurn(turnId))!.toolSteps).toEqual([running]);
    await store.saveProgress(turnId, 'Two', 1);
    expect((await store.getTurn(turnId))!.toolSteps).toEqual([running]);
    const done = { ...running, output: '1+1 = 2', durationMs: 0.4 };
    await store.finishTurn(turnId, {
      status: 'complete',
      answer: 'Two',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 1,
      toolSteps: [done],
    });
    expect((await store.getConversation('c1'))!.turns[0]!.toolSteps).toEqual([done]);
    const read = await store.getTurn(turnId);
    read!.toolSteps[0]!.output = 'changed by a reader';
    expect((await store.getTurn(turnId))!.toolSteps[0]!.output).toBe('1+1 = 2');
  });

  it("pages a conversation's turns: the newest page first, each page oldest first", async () => {
    const ids: string[] = [];
    for (let index = 0; index < 7; index++) ids.push((await answered(newTurn('long'))).turnId);
    await store.startTurn(newTurn('other'));
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await store.getConversationPage('long', { limit: 3, cursor });
      expect(page).toMatchObject({ contextId: 'long', turnCount: 7 });
      pages.push(page!.turns.map((turn) => turn.turnId));
      cursor = page!.nextCursor;
    } while (cursor);
    expect(pages).toEqual([ids.slice(4, 7), ids.slice(1, 4), ids.slice(0, 1)]);
    expect((await store.getConversationPage('long', { limit: 7 }))!).toMatchObject({ nextCursor: undefined });
    expect((await store.getConversationPage('long', { limit: 7 }))!.turns.map((turn) => turn.turnId)).toEqual(ids);
    expect(await store.getConversationPage('nope', { limit: 3 })).toBeUndefined();
  });

  it("reads the newest answered turns of a conversation, oldest first, for a new turn's history", async () => {
    const answered: string[] = [];
    for (let index = 0; index < 5; index++) {
      const { turnId } = await store.startTurn(newTurn('chat'));
      const answer = index === 3 ? '' : `answer ${index}`;
      await store.finishTurn(turnId, {
        status: answer ? 'complete' : 'error',
        answer,
        usage: undefined,
        timings: undefined,
        errorCode: undefined,
        tokenCount: 1,
      });
      if (answer) answered.push(turnId);
    }
    await store.startTurn(newTurn('chat'));
    expect((await store.recentTurns('chat', 2)).map((turn) => turn.turnId)).toEqual(answered.slice(-2));
    expect((await store.recentTurns('chat', 10)).map((turn) => turn.turnId)).toEqual(answered);
    expect(await store.recentTurns('chat', 0)).toEqual([]);
    expect(await store.recentTurns('nope', 5)).toEqual([]);
  });

  it('refuses a second generating turn in a conversation, and a client_message_id used twice in one', async () => {
    const first = await store.startTurn(newTurn('c1', { clientMessageId: 'send-1' }));
    await expect(store.startTurn(newTurn('c1'))).rejects.toEqual(new TurnConflictError('busy'));
    await store.startTurn(newTurn('c2'));
    await store.finishTurn(first.turnId, ENDED);
    await expect(store.startTurn(newTurn('c1', { clientMessageId: 'send-1' }))).rejects.toEqual(new TurnConflictError('duplicate'));
    // The same id in another conversation is another message.
    await answered(newTurn('c2-next', { clientMessageId: 'send-1' }));
    const next = await store.startTurn(newTurn('c1', { clientMessageId: 'send-2' }));
    expect((await store.getConversation('c1'))!.turns.map((turn) => turn.turnId)).toEqual([first.turnId, next.turnId]);
  });

  it('starts one turn when two try at once in one conversation', async () => {
    await answered(newTurn('race'));
    const results = await Promise.allSettled([store.startTurn(newTurn('race')), store.startTurn(newTurn('race'))]);
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((result) => result.status === 'rejected')).toMatchObject({ reason: new TurnConflictError('busy') });
    expect((await store.getConversation('race'))!.turns.map((turn) => turn.status)).toEqual(['complete', 'streaming']);
  });

  it('exports every conversation a page at a time, and imports a copy once however often it is imported', async () => {
    const owned = await answered(newTurn('b-owned', { owner: 'key-a', userMessage: 'first' }));
    await store.saveProgress((await store.startTurn(newTurn('b-owned'))).turnId, 'half', 1);
    await answered(newTurn('a-open', { userMessage: 'text with \u0000 nul' }));
    await store.renameConversation('a-open', 'Renamed');
    const exported = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.exportConversations({ after, limit: 1 });
      if (page.length === 0) break;
      exported.push(...page);
      after = page.at(-1)!.contextId;
    }
    expect(exported.map((conversation) => conversation.contextId)).toEqual(['a-open', 'b-owned']);

    const target = await create();
    try {
      expect(await target.importConversation(exported[0]!)).toEqual({ created: true, turnsAdded: 1, turnsSkipped: 0 });
      expect(await target.importConversation(exported[1]!)).toEqual({ created: true, turnsAdded: 2, turnsSkipped: 0 });
      expect(await target.importConversation(exported[1]!)).toEqual({ created: false, turnsAdded: 0, turnsSkipped: 0 });
      const copied = (await target.getConversation('b-owned'))!;
      const original = exported[1]!;
      expect(copied).toMatchObject({
        owner: 'key-a',
        title: original.title,
        turnCount: 2,
        createdAt: original.createdAt,
        updatedAt: original.updatedAt,
      });
      expect(copied.turns[0]).toEqual(original.turns[0]);
      // The turn that was generating in the source cannot be generating in the copy.
      expect(copied.turns[1]).toMatchObject({ turnId: original.turns[1]!.turnId, status: 'interrupted', answer: 'half', tokenCount: 1 });
      expect((await target.getConversation('a-open'))!).toMatchObject({ title: 'Renamed', owner: null });
      expect((await target.getConversation('a-open'))!.turns[0]!.userMessage).toBe('text with \u0000 nul');
      expect((await target.listConversations({ owner: 'key-a', limit: 5 })).conversations.map((c) => c.contextId)).toEqual(['b-owned']);
      expect((await target.getTurn(owned.turnId))!.answer).toBe('done');
    } finally {
      await target.close();
    }
  });

  it('skips a copied turn whose client_message_id the conversation already gave another turn, and imports the rest', async () => {
    await answered(newTurn('both', { clientMessageId: 'send-1', userMessage: 'asked in the source' }));
    await answered(newTurn('both', { clientMessageId: 'send-2' }));
    await answered(newTurn('both'));
    const [copy] = await store.exportConversations({ limit: 1 });
    const target = await create();
    try {
      const here = await target.startTurn(newTurn('both', { clientMessageId: 'send-1', userMessage: 'asked in the target' }));
      await target.finishTurn(here.turnId, ENDED);
      expect(await target.importConversation(copy!)).toEqual({ created: false, turnsAdded: 2, turnsSkipped: 1 });
      // Imported twice: the same turn already there is not a conflict, the other send-1 still is.
      expect(await target.importConversation(copy!)).toEqual({ created: false, turnsAdded: 0, turnsSkipped: 1 });
      const turns = (await target.getConversation('both'))!.turns;
      expect(turns.map((turn) => turn.turnId)).toEqual([here.turnId, copy!.turns[1]!.turnId, copy!.turns[2]!.turnId]);
      expect((await target.findTurnByClientMessageId('both', 'send-1'))!.userMessage).toBe('asked in the target');
      expect((await target.findTurnByClientMessageId('both', 'send-2'))!.turnId).toBe(copy!.turns[1]!.turnId);
    } finally {
      await target.close();
    }
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });
});

describe('the SQLite store on disk', () => {
  it('upgrades a database from before tool steps (schema 2), keeping its turns', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chatwait-upgrade-')), 'chat.db');
    const first = new SqliteConversationStore(path);
    const { turnId } = await first.startTurn(newTurn('old'));
    await first.finishTurn(turnId, {
      status: 'complete',
      answer: 'from before',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 2,
    });
    await first.close();
    const database = new BetterSqlite3(path);
    database.exec(
      'DROP INDEX turns_one_streaming; ALTER TABLE turns DROP COLUMN tool_steps; DROP TABLE store_probe; DELETE FROM schema_migrations WHERE version >= 3;',
    );
    database.close();
    const upgraded = new SqliteConversationStore(path);
    expect(await upgraded.getTurn(turnId)).toMatchObject({ answer: 'from before', toolSteps: [] });
    await upgraded.close();
  });

  it('upgrades a file left by a crash with two generating turns in a conversation: only the newest stays streaming', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chatwait-upgrade-')), 'chat.db');
    const first = new SqliteConversationStore(path);
    const older = await first.startTurn(newTurn('crashed'));
    await first.close();
    // A second generating turn, written behind the store's back as a ChatWait before schema 5 could have.
    const raw = new BetterSqlite3(path);
    raw.exec('DROP INDEX turns_one_streaming; DELETE FROM schema_migrations WHERE version >= 5;');
    raw
      .prepare(
        "INSERT INTO turns (turn_id, context_id, sequence, user_message, status, model, created_at) VALUES ('newer', 'crashed', 2, 'again', 'streaming', 'm', 1)",
      )
      .run();
    raw.close();
    const upgraded = new SqliteConversationStore(path);
    expect(await upgraded.getTurn(older.turnId)).toMatchObject({ status: 'interrupted' });
    expect(await upgraded.getTurn('newer')).toMatchObject({ status: 'streaming' });
    await upgraded.close();
  });

  it('keeps everything across a reopen (the folder created on first open)', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chatwait-reopen-')), 'nested', 'chat.db');
    const first = openSqliteStore(path);
    const { turnId } = await first.startTurn(newTurn('kept'));
    await first.finishTurn(turnId, {
      status: 'complete',
      answer: 'still here',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 2,
    });
    await first.close();
    const second = new SqliteConversationStore(path);
    expect(await second.getTurn(turnId)).toMatchObject({ answer: 'still here', status: 'complete' });
    await second.close();
  });
});
