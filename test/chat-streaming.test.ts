import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse, tokensOf, type SseEvent } from './support/sse-client.js';
import { postJson, startTestServer, type TestServer } from './support/test-server.js';

/** Checks the invariants of api.md on one turn's events and returns its end event's data. */
function expectWellFormedTurn(events: SseEvent[]) {
  const [start, ...rest] = events;
  expect(start!.json).toMatchObject({ type: 'start', event_type: 'start', resumed: false });
  const turnId: string = start!.json.turn_id;
  expect(start!.id).toBe(`${turnId}/start`);
  const end = rest.at(-1)!;
  expect(end.json.type).toBe('end');
  for (const event of events) expect(event.fields).toEqual(['data', 'id']);
  rest.forEach((event, position) => {
    expect(event.id).toBe(`${turnId}/${position}`);
    expect(event.json.event_type).toBe(event.json.type);
    expect(event.json.context_id).toBe(start!.json.context_id);
  });
  const tokenEvents = rest.filter((event) => event.json.type === 'token');
  tokenEvents.forEach((event, index) => {
    expect(Object.keys(event.json)).toEqual(['token', 'token_index', 'context_id', 'event_type', 'type']);
    expect(event.json.token_index).toBe(index);
  });
  expect(end.json.final_output).toBe(tokensOf(events).join(''));
  expect(end.json.token_count).toBe(tokenEvents.length);
  expect(end.json.turn_id).toBe(turnId);
  return end.json;
}

describe('GET /api/v1/chat/streaming on the demo model', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it('streams start, every token in order and end, each with an id line', async () => {
    const result = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('Hello streaming')}`);
    expect(result.status).toBe(200);
    const end = expectWellFormedTurn(result.events);
    expect(end).toMatchObject({ finish_reason: 'stop', model: 'chatwait-demo' });
    expect(end.final_output).toContain('Hello streaming');
    expect(end.token_count).toBeGreaterThan(20);
    expect(end.timings.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(end.timings.total_ms).toBeGreaterThanOrEqual(end.timings.ttft_ms);
    expect(end.usage.output_tokens).toBe(end.token_count);
  });

  it('sends the SSE headers, a retry field and no compression', async () => {
    const result = await readSse(`${server.url}/api/v1/chat/streaming?message=hi`, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(result.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(result.headers.get('cache-control')).toContain('no-cache');
    expect(result.headers.get('x-accel-buffering')).toBe('no');
    expect(result.headers.get('content-encoding')).toBeNull();
    expect(result.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.retry).toBeGreaterThan(0);
    expect(result.comments).toContain('connected');
  });

  it('never starts a generation for a HEAD request', async () => {
    const response = await fetch(`${server.url}/api/v1/chat/streaming?message=head&context_id=head-check`, { method: 'HEAD' });
    expect(response.status).toBe(404);
    expect((await fetch(`${server.url}/api/v1/conversations/head-check`)).status).toBe(404);
  });

  it('keeps whitespace-only tokens, and their concatenation equals the stored answer', async () => {
    const result = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('Say   it\n\nplease')}`);
    const end = expectWellFormedTurn(result.events);
    const tokens = tokensOf(result.events);
    expect(tokens.some((token) => token.trim() === '')).toBe(true);
    const conversation = await server.store.getConversation(end.context_id);
    expect(conversation!.turns.at(-1)!.answer).toBe(end.final_output);
    expect(conversation!.turns.at(-1)!.status).toBe('complete');
  });

  it('accepts the same fields as a JSON body on POST', async () => {
    const result = await readSse(`${server.url}/api/v1/chat/streaming`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'posted', context_id: 'post-conversation' }),
    });
    const end = expectWellFormedTurn(result.events);
    expect(end.context_id).toBe('post-conversation');
    expect(end.final_output).toContain('posted');
  });

  it('creates a new conversation with a random UUID when context_id is absent', async () => {
    const first = await readSse(`${server.url}/api/v1/chat/streaming?message=one`);
    const second = await readSse(`${server.url}/api/v1/chat/streaming?message=two`);
    const firstId = first.events[0]!.json.context_id;
    expect(firstId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(second.events[0]!.json.context_id).not.toBe(firstId);
  });

  it('remembers the conversation across turns by context_id', async () => {
    await readSse(`${server.url}/api/v1/chat/streaming?message=first%20words&context_id=memory-test`);
    const second = await readSse(`${server.url}/api/v1/chat/streaming?message=second&context_id=memory-test`);
    const end = expectWellFormedTurn(second.events);
    expect(end.final_output).toContain('1 earlier message');
    expect(end.final_output).toContain('first words');
  });

  it('gives the same answer in wait and streaming mode for the same model output', async () => {
    const waited = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'same answer', context_id: 'same-a' });
    const streamed = await readSse(`${server.url}/api/v1/chat/streaming?message=same%20answer&context_id=same-b`);
    expect(streamed.events.at(-1)!.json.final_output).toBe(waited.body.message);
    expect(streamed.events.at(-1)!.json.token_count).toBe(waited.body.token_count);
  });

  it('answers validation failures with JSON before any stream starts', async () => {
    const empty = await readSse(`${server.url}/api/v1/chat/streaming?message=`);
    expect(empty.status).toBe(422);
    expect(empty.error.detail[0]).toMatchObject({ loc: ['query', 'message'], type: 'string_too_short' });
    const missing = await readSse(`${server.url}/api/v1/chat/streaming`);
    expect(missing.status).toBe(422);
    expect(missing.error.detail[0]).toMatchObject({ loc: ['query', 'message'], type: 'missing' });
    const badIndex = await readSse(`${server.url}/api/v1/chat/streaming?message=hi&last_token_index=-1`);
    expect(badIndex.status).toBe(422);
    expect(badIndex.error.detail[0].loc).toEqual(['query', 'last_token_index']);
    const blank = await readSse(`${server.url}/api/v1/chat/streaming?message=%20%20%09`);
    expect(blank.status).toBe(400);
    expect(blank.error.error_code).toBe('EMPTY_MESSAGE');
  });
});

describe('SSE delivery timing', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '5', DEMO_RESPONSE_TOKENS: '3', SSE_HEARTBEAT_SECONDS: '0.1' });
  });
  afterAll(() => server.close());

  it('sends ping comments while the model is slow', async () => {
    const result = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 3 tokens')}`);
    expect(result.comments.filter((comment) => comment === 'ping').length).toBeGreaterThan(0);
    expectWellFormedTurn(result.events);
  });

  it('frames every block as data then id, and never sends a block without data (retry, comments and pings join the next event)', async () => {
    const response = await fetch(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 3 tokens')}`);
    const text = await response.text();
    const blocks = text.split('\n\n');
    expect(blocks.pop()).toBe('');
    expect(text).toMatch(/^retry: \d+\n: connected\ndata: /);
    expect(text).toContain(': ping\n');
    for (const block of blocks) {
      const fields = block.split('\n').filter((line) => !line.startsWith(':') && !line.startsWith('retry:'));
      expect(fields.map((line) => line.slice(0, line.indexOf(':')))).toEqual(['data', 'id']);
    }
    expect(blocks.length).toBe(5);
  });
});
