import { describe, expect, it } from 'vitest';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import { StoreUnavailableError } from '../errors.js';
import type { TurnRecord } from '../store/conversation-store.js';
import { orResync, readFromPosition, readFromTokenIndex, resyncFromRecord } from './replay-reader.js';
import type { ReplayBatch } from './turn-types.js';
import { errorEventData, toolCallEventData, toolResultEventData } from '../protocol/wire-events.js';

/** What a client would receive: the SSE text of every entry of every batch. */
async function wireText(batches: AsyncIterable<ReplayBatch>, turnId = 'turn'): Promise<string> {
  let text = '';
  for await (const batch of batches) {
    text += batch.entries
      .slice(batch.start)
      .map((entry) => `data: ${entry.data}\nid: ${turnId}/${entry.position}\n\n`)
      .join('');
  }
  return text;
}

/** The batches of a token-index read, and the position its start event names. */
async function fromTokenIndex(log: MemoryReplayLog, turnId: string, n: number): Promise<{ start: number | 'start'; text: string }> {
  const replay = (await readFromTokenIndex(log, turnId, n))!;
  return { start: replay.startPosition, text: await wireText(replay.batches) };
}

/** What the generation appends for a wire event: its JSON and, for a token, its index. */
const entryOf = (data: string, final: boolean) => ({
  data,
  tokenIndex: data.startsWith('{"token"') ? (JSON.parse(data) as { token_index: number }).token_index : undefined,
  final,
});

// Text of 1 to 4 bytes a character, so positions and byte offsets differ.
const token = (index: number) =>
  JSON.stringify({ token: `t${index}${[...'é€😀'].slice(0, index % 4).join('')}`, token_index: index, type: 'token' });
const blocks = (turnId: string, entries: string[], from: number) =>
  entries
    .slice(from)
    .map((data, offset) => `data: ${data}\nid: ${turnId}/${from + offset}\n\n`)
    .join('');

describe('reading a turn', () => {
  const entries = [...Array.from({ length: 700 }, (_, index) => token(index)), '{"type":"end"}'];

  it('replays an ended turn from any position exactly as the live reader saw it, and the end again past it', async () => {
    const log = new MemoryReplayLog();
    log.open('turn');
    const live = wireText(readFromPosition(log, 'turn', 0));
    entries.forEach((data, position) => log.append('turn', entryOf(data, position === entries.length - 1)));
    const liveText = await live;
    expect(liveText).toBe(blocks('turn', entries, 0));
    for (const from of [0, 1, 255, 256, 699, 700])
      expect(await wireText(readFromPosition(log, 'turn', from))).toBe(blocks('turn', entries, from));
    expect(await wireText(readFromPosition(log, 'turn', 701))).toBe(blocks('turn', entries, 700));
    expect(await wireText(readFromPosition(log, 'turn', 5_000))).toBe(blocks('turn', entries, 700));
  });

  it('resumes from a token index on an ended turn, and gives how it ended when asked for more', async () => {
    const log = new MemoryReplayLog();
    log.open('turn');
    entries.forEach((data, position) => log.append('turn', entryOf(data, position === entries.length - 1)));
    expect(await fromTokenIndex(log, 'turn', 0)).toEqual({ start: 'start', text: blocks('turn', entries, 0) });
    expect(await fromTokenIndex(log, 'turn', 300)).toEqual({ start: 299, text: blocks('turn', entries, 300) });
    expect(await fromTokenIndex(log, 'turn', 9_999)).toEqual({ start: 9_998, text: blocks('turn', entries, 700) });
  });

  it('replays an ended turn with tool events between tokens, and one that ended in an error, from every position', async () => {
    const withTools = [
      token(0),
      toolCallEventData('call_1', 'calculate', '{"expression":"1+1"}'),
      toolResultEventData('call_1', '2', false, 3),
      token(1),
      token(2),
      errorEventData('context', 'turn', 'UPSTREAM_ERROR', 'The model provider failed.', true),
    ];
    const log = new MemoryReplayLog();
    log.open('turn');
    const live = wireText(readFromPosition(log, 'turn', 0));
    withTools.forEach((data, position) => log.append('turn', entryOf(data, position === withTools.length - 1)));
    expect(await live).toBe(blocks('turn', withTools, 0));
    for (let from = 0; from < withTools.length; from++)
      expect(await wireText(readFromPosition(log, 'turn', from))).toBe(blocks('turn', withTools, from));
    expect(await wireText(readFromPosition(log, 'turn', withTools.length))).toBe(blocks('turn', withTools, withTools.length - 1));
    // By token index: token 1 comes after the tool step; the step before it is not sent again.
    expect(await fromTokenIndex(log, 'turn', 1)).toEqual({ start: 0, text: blocks('turn', withTools, 1) });
    expect(await fromTokenIndex(log, 'turn', 2)).toEqual({ start: 3, text: blocks('turn', withTools, 4) });
    // Past the end: the tool events before the missing token count, the final entry does not.
    expect(await fromTokenIndex(log, 'turn', 5)).toEqual({ start: 6, text: blocks('turn', withTools, 5) });
  });

  it('resumes a generating turn from a token index: what the log holds after it, then the live entries, nothing twice', async () => {
    const log = new MemoryReplayLog();
    log.open('turn');
    const withTools = [
      token(0),
      token(1),
      toolCallEventData('call_1', 'sleep_for', '{}'),
      toolResultEventData('call_1', 'ok', false, 1),
      token(2),
      token(3),
      '{"type":"end"}',
    ];
    withTools.slice(0, 3).forEach((data) => log.append('turn', entryOf(data, false)));
    // The client holds tokens 0 and 1; the tool call after token 1 comes again (the original resume counts tokens only).
    const held = (await readFromTokenIndex(log, 'turn', 2))!;
    expect(held.startPosition).toBe(1);
    // The client claims a token the turn has not written yet: it would come after the tool call so far.
    const ahead = (await readFromTokenIndex(log, 'turn', 4))!;
    expect(ahead.startPosition).toBe(4);
    const reading = [wireText(held.batches), wireText(ahead.batches)];
    withTools.slice(3).forEach((data, offset) => log.append('turn', entryOf(data, offset === 3)));
    expect(await reading[0]).toBe(blocks('turn', withTools, 2));
    expect(await reading[1]).toBe(blocks('turn', withTools, 6));
  });

  it('never ends in silence once the log is gone: a store that cannot be read, or a turn deleted, gives an error event', async () => {
    const log = new MemoryReplayLog();
    const read = (getRecord: () => Promise<TurnRecord | undefined>) =>
      wireText(orResync(readFromPosition(log, 'gone', 0), 'gone', 'chat', getRecord), 'gone');
    const storeDown = await read(() => Promise.reject(new StoreUnavailableError('disk full')));
    expect(storeDown).toMatch(/^data: .*\nid: gone\/resync\n\n$/);
    expect(JSON.parse(storeDown.slice(6, storeDown.indexOf('\n')))).toMatchObject({
      type: 'error',
      context_id: 'chat',
      turn_id: 'gone',
      error_code: 'STORE_UNAVAILABLE',
      retryable: true,
    });
    const deleted = await read(() => Promise.resolve(undefined));
    expect(JSON.parse(deleted.slice(6, deleted.indexOf('\n')))).toMatchObject({
      type: 'error',
      turn_id: 'gone',
      error_code: 'NOT_FOUND',
      retryable: false,
    });
  });

  it('tells a turn whose outcome the store has not taken yet from an interrupted one', () => {
    const record: TurnRecord = {
      turnId: 'pending',
      contextId: 'chat',
      userMessage: 'hi',
      answer: 'partial',
      status: 'streaming',
      model: 'demo',
      createdAt: new Date(),
      finishedAt: undefined,
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      clientMessageId: undefined,
      tokenCount: 1,
      toolSteps: [],
    };
    const events = resyncFromRecord(record);
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.data)).toMatchObject({ type: 'error', error_code: 'STORE_UNAVAILABLE', retryable: true });
    expect(JSON.parse(resyncFromRecord({ ...record, status: 'interrupted' }).at(-1)!.data)).toMatchObject({
      type: 'end',
      finish_reason: 'interrupted',
    });
  });
});
