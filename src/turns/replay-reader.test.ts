import { describe, expect, it } from 'vitest';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import { StoreUnavailableError } from '../errors.js';
import type { TurnRecord } from '../store/conversation-store.js';
import { fromPosition, fromTokenIndex, orResync, resyncFromRecord, type WireBatch } from './replay-reader.js';
import { errorEventData, toolCallEventData, toolResultEventData } from '../protocol/wire-events.js';

/** What a client would receive: the SSE text of every batch. */
async function wireText(batches: AsyncIterable<WireBatch>): Promise<string> {
  let text = '';
  for await (const batch of batches) {
    text += typeof batch === 'string' ? batch : batch.map((event) => `data: ${event.data}\nid: ${event.id}\n\n`).join('');
  }
  return text;
}

// Text of 1 to 4 bytes a character, so positions and byte offsets differ.
const token = (index: number) => JSON.stringify({ token: `t${index}${[...'é€😀'].slice(0, index % 4).join('')}`, token_index: index, type: 'token' });
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
    const live = wireText(fromPosition(log, 'turn', 0));
    entries.forEach((data, position) => log.append('turn', data, position === entries.length - 1));
    const liveText = await live;
    expect(liveText).toBe(blocks('turn', entries, 0));
    for (const from of [0, 1, 255, 256, 699, 700]) expect(await wireText(fromPosition(log, 'turn', from))).toBe(blocks('turn', entries, from));
    expect(await wireText(fromPosition(log, 'turn', 701))).toBe(blocks('turn', entries, 700));
    expect(await wireText(fromPosition(log, 'turn', 5_000))).toBe(blocks('turn', entries, 700));
  });

  it('resumes from a token index on an ended turn, and gives how it ended when asked for more', async () => {
    const log = new MemoryReplayLog();
    log.open('turn');
    entries.forEach((data, position) => log.append('turn', data, position === entries.length - 1));
    expect(await wireText(fromTokenIndex(log, 'turn', 0))).toBe(blocks('turn', entries, 0));
    expect(await wireText(fromTokenIndex(log, 'turn', 300))).toBe(blocks('turn', entries, 300));
    expect(await wireText(fromTokenIndex(log, 'turn', 9_999))).toBe(blocks('turn', entries, 700));
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
    const live = wireText(fromPosition(log, 'turn', 0));
    withTools.forEach((data, position) => log.append('turn', data, position === withTools.length - 1));
    expect(await live).toBe(blocks('turn', withTools, 0));
    for (let from = 0; from < withTools.length; from++) expect(await wireText(fromPosition(log, 'turn', from))).toBe(blocks('turn', withTools, from));
    expect(await wireText(fromPosition(log, 'turn', withTools.length))).toBe(blocks('turn', withTools, withTools.length - 1));
    // By token index: token 1 comes after the tool step; the step before it is not sent again.
    expect(await wireText(fromTokenIndex(log, 'turn', 1))).toBe(blocks('turn', withTools, 1));
    expect(await wireText(fromTokenIndex(log, 'turn', 2))).toBe(blocks('turn', withTools, 4));
  });

  it('never ends in silence once the log is gone: a store that cannot be read, or a turn deleted, gives an error event', async () => {
    const log = new MemoryReplayLog();
    const read = (getRecord: () => Promise<TurnRecord | undefined>) => wireText(orResync(fromPosition(log, 'gone', 0), log, 'gone', 'chat', getRecord));
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
    expect(JSON.parse(deleted.slice(6, deleted.indexOf('\n')))).toMatchObject({ type: 'error', turn_id: 'gone', error_code: 'NOT_FOUND', retryable: false });
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
    expect(JSON.parse(resyncFromRecord({ ...record, status: 'interrupted' }).at(-1)!.data)).toMatchObject({ type: 'end', finish_reason: 'interrupted' });
  });
});
