import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayLog } from '../src/streams/memory-replay-log.js';
import { readSse, tokensOf, type SseEvent } from './support/sse-client.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

let server: TestServer;
const replayLog = new MemoryReplayLog();
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '400', STREAM_TTL_SECONDS: '0.3' }, { replayLog });
});
afterAll(() => server.close());

const streamUrl = (message: string, contextId: string, lastTokenIndex?: number) =>
  `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}${
    lastTokenIndex === undefined ? '' : `&last_token_index=${lastTokenIndex}`
  }`;
const tokenCount = (events: SseEvent[]) => events.filter((event) => event.json.type === 'token').length;

/** Asserts that the pieces of a stream, read over several connections, make the whole answer exactly once. */
async function expectExactlyOnce(pieces: SseEvent[][], contextId: string) {
  const all = pieces.flat();
  const indices = all.filter((event) => event.json.type === 'token').map((event) => event.json.token_index);
  expect(indices).toEqual(indices.map((_, index) => index));
  const end = all.at(-1)!.json;
  expect(end.type).toBe('end');
  expect(tokensOf(all).join('')).toBe(end.final_output);
  const conversation = (await getJson(`${server.url}/api/v1/conversations/${contextId}`)).body;
  expect(conversation.turns.at(-1).answer).toBe(end.final_output);
  expect(conversation.turns.at(-1).status).toBe('complete');
}

describe('resuming a dropped stream', () => {
  it('replays exactly the missing events after Last-Event-ID, then follows live', async () => {
    const message = 'answer in 200 tokens';
    const first = await readSse(streamUrl(message, 'resume-header'), { until: (_event, events) => tokenCount(events) === 15 });
    const lastId = first.events.at(-1)!.id!;
    expect(lastId).toMatch(/\/14$/);
    const rest = await readSse(streamUrl(message, 'resume-header'), { headers: { 'last-event-id': lastId } });
    expect(rest.events[0]!.json).toMatchObject({ type: 'start', resumed: true, turn_id: first.events[0]!.json.turn_id });
    // The resumed start carries the position the client holds, so a new drop resumes from there, not from the beginning.
    expect(rest.events[0]!.id).toBe(lastId);
    expect(rest.events[1]!.json.token_index).toBe(15);
    await expectExactlyOnce([first.events.slice(1), rest.events.slice(1)], 'resume-header');
  });

  it('resumes correctly from the id of a resumed start event, as an EventSource dropped again at once does', async () => {
    const message = 'double drop, 200 tokens';
    const first = await readSse(streamUrl(message, 'double-drop'), { until: (_event, events) => tokenCount(events) === 12 });
    const second = await readSse(streamUrl(message, 'double-drop'), {
      headers: { 'last-event-id': first.events.at(-1)!.id! },
      until: (event) => event.json.type === 'start',
    });
    const third = await readSse(streamUrl(message, 'double-drop'), { headers: { 'last-event-id': second.events[0]!.id! } });
    expect(third.events[1]!.json.token_index).toBe(12);
    await expectExactlyOnce([first.events.slice(1), third.events.slice(1)], 'double-drop');
  });

  it('resumes the original way, with the same message, context_id and last_token_index', async () => {
    const message = 'answer in 200 tokens please';
    const first = await readSse(streamUrl(message, 'resume-query'), { until: (_event, events) => tokenCount(events) === 7 });
    const rest = await readSse(streamUrl(message, 'resume-query', 7));
    expect(rest.events[0]!.json).toMatchObject({ resumed: true, turn_id: first.events[0]!.json.turn_id });
    expect(rest.events[0]!.id).toBe(`${first.events[0]!.json.turn_id}/6`);
    expect(rest.events[1]!.json.token_index).toBe(7);
    await expectExactlyOnce([first.events.slice(1), rest.events.slice(1)], 'resume-query');
  });

  it('replays an ended turn from last_token_index while it is still in the log', async () => {
    const message = 'short one, 30 tokens';
    const whole = await readSse(streamUrl(message, 'resume-ended'));
    const again = await readSse(streamUrl(message, 'resume-ended', 20));
    expect(again.events[0]!.json).toMatchObject({ resumed: true, turn_id: whole.events[0]!.json.turn_id });
    expect(tokensOf(again.events)).toEqual(tokensOf(whole.events).slice(20));
    expect(again.events.at(-1)!.json.final_output).toBe(whole.events.at(-1)!.json.final_output);
  });

  it('starts a new turn when the same message is sent again with last_token_index 0 after the end', async () => {
    const message = 'ask twice, 10 tokens';
    const first = await readSse(streamUrl(message, 'ask-twice'));
    const second = await readSse(streamUrl(message, 'ask-twice', 0));
    expect(second.events[0]!.json).toMatchObject({ resumed: false });
    expect(second.events[0]!.json.turn_id).not.toBe(first.events[0]!.json.turn_id);
  });

  it('gives every reader of one turn the same events, including one that joins after the end', async () => {
    const message = 'shared turn, 120 tokens';
    const firstReader = readSse(streamUrl(message, 'many-readers'));
    const started = await readSse(streamUrl(message, 'many-readers', 0), { until: (_event, events) => events.length === 1 });
    const turnId = started.events[0]!.json.turn_id;
    const readers = await Promise.all([
      firstReader,
      readSse(streamUrl(message, 'many-readers'), { headers: { 'last-event-id': `${turnId}/start` } }),
      readSse(streamUrl(message, 'many-readers', 0)),
    ]);
    const late = await readSse(streamUrl(message, 'many-readers'), { headers: { 'last-event-id': `${turnId}/start` } });
    const bodies = [...readers, late].map((result) => result.events.slice(1).map((event) => `${event.id} ${event.data}`));
    for (const body of bodies) expect(body).toEqual(bodies[0]);
    expect(bodies[0]!.length).toBeGreaterThan(100);
  });

  it('sends resync with the stored answer, then end, once the turn has left the log', async () => {
    const message = 'expire me, 12 tokens';
    const whole = await readSse(streamUrl(message, 'resync'));
    const turnId = whole.events[0]!.json.turn_id;
    await expect.poll(() => replayLog.has(turnId), { timeout: 5000 }).toBe(false);
    const resumed = await readSse(streamUrl(message, 'resync'), { headers: { 'last-event-id': `${turnId}/5` } });
    const [start, resync, end] = resumed.events.map((event) => event.json);
    expect(start).toMatchObject({ type: 'start', resumed: true, turn_id: turnId });
    expect(resync).toEqual({
      type: 'resync',
      event_type: 'resync',
      turn_id: turnId,
      final_output: whole.events.at(-1)!.json.final_output,
      token_count: whole.events.at(-1)!.json.token_count,
    });
    expect(end).toMatchObject({ type: 'end', finish_reason: 'stop', final_output: resync.final_output });
    expect(resumed.events).toHaveLength(3);
  });

  it('releases the memory of a finished, unread turn after the TTL', async () => {
    await readSse(streamUrl('count me, 10 tokens', 'ttl-count'));
    expect(replayLog.size).toBeGreaterThan(0);
    await expect.poll(() => replayLog.size, { timeout: 5000 }).toBe(0);
  });

  it('answers a resume from at or past the end with the end again, never silence', async () => {
    const whole = await readSse(streamUrl('end again, 8 tokens', 'past-end'));
    const end = whole.events.at(-1)!;
    for (const lastId of [end.id!, `${whole.events[0]!.json.turn_id}/999`]) {
      const again = await readSse(streamUrl('end again, 8 tokens', 'past-end'), { headers: { 'last-event-id': lastId } });
      expect(again.events.map((event) => event.json.type)).toEqual(['start', 'end']);
      expect(again.events[1]!.data).toBe(end.data);
    }
    const beyond = await readSse(streamUrl('end again, 8 tokens', 'past-end', 500));
    expect(beyond.events.map((event) => event.json.type)).toEqual(['start', 'end']);
  });

  it('answers a Last-Event-ID past the end of a running turn with the tail once it exists, and with the end if it never does', async () => {
    const message = 'run on, 400 tokens';
    const first = await readSse(streamUrl(message, 'past-running-end'), { until: (_event, events) => tokenCount(events) === 3 });
    const turnId = first.events[0]!.json.turn_id;
    const [ahead, beyond] = await Promise.all([
      readSse(streamUrl(message, 'past-running-end'), { headers: { 'last-event-id': `${turnId}/300` } }),
      readSse(streamUrl(message, 'past-running-end'), { headers: { 'last-event-id': `${turnId}/5000` } }),
    ]);
    const end = ahead.events.at(-1)!;
    expect(end.json).toMatchObject({ type: 'end', turn_id: turnId });
    // From position 301 on, as those positions came to exist, then the end.
    const tokens = ahead.events.filter((event) => event.json.type === 'token');
    expect(tokens[0]!.json.token_index).toBe(301);
    expect(tokens.map((event) => event.json.token_index)).toEqual(tokens.map((_event, index) => 301 + index));
    expect(end.json.token_count).toBe(301 + tokens.length);
    // Past anything the turn ever had: still how it ended, not a stream of only start.
    expect(beyond.events.map((event) => event.json.type)).toEqual(['start', 'end']);
    expect(beyond.events[1]!.data).toBe(end.data);
  });

  it('resumes an idempotent send from last_token_index, not from the beginning', async () => {
    const body = { message: 'idempotent resume, 40 tokens', context_id: 'idem-resume', client_message_id: 'send-7' };
    const post = (extra: object) =>
      readSse(`${server.url}/api/v1/chat/streaming`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, ...extra }),
      });
    const whole = await post({});
    const again = await post({ last_token_index: 30 });
    expect(again.events[0]!.json).toMatchObject({ resumed: true, turn_id: whole.events[0]!.json.turn_id });
    expect(again.events[1]!.json.token_index).toBe(30);
    expect(tokensOf(again.events)).toEqual(tokensOf(whole.events).slice(30));
  });

  it('answers 404 for an unknown turn and 422 for a malformed Last-Event-ID', async () => {
    const unknown = await readSse(streamUrl('x', 'nobody'), { headers: { 'last-event-id': 'no-such-turn/3' } });
    expect(unknown.status).toBe(404);
    expect(unknown.error.error_code).toBe('NOT_FOUND');
    const malformed = await readSse(streamUrl('x', 'nobody'), { headers: { 'last-event-id': 'not an id' } });
    expect(malformed.status).toBe(422);
    expect(malformed.error.detail[0].loc).toEqual(['header', 'last-event-id']);
  });

  it('refuses to resume a turn under another conversation', async () => {
    const whole = await readSse(streamUrl('mine, 5 tokens', 'owner-a'));
    const other = await readSse(streamUrl('mine, 5 tokens', 'owner-b'), {
      headers: { 'last-event-id': `${whole.events[0]!.json.turn_id}/start` },
    });
    expect(other.status).toBe(404);
  });
});
