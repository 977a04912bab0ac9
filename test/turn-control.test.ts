import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

let fake: FakeOpenAIServer;
let server: TestServer;
beforeAll(async () => {
  fake = await startFakeOpenAI();
  server = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model' });
});
afterAll(async () => {
  await server.close();
  await fake.close();
});

const slowTokens = (count: number) => ({
  kind: 'stream' as const,
  tokens: Array.from({ length: count }, (_, index) => ` t${index}`),
  delayMs: 20,
});
const cancel = (turnId: string) => postJson(`${server.url}/api/v1/chat/turns/${turnId}/cancel`, {});

describe('cancel', () => {
  it('stops the generation, aborts the upstream request and keeps the partial answer', async () => {
    fake.enqueue(slowTokens(200));
    const closedBefore = fake.closedConnections();
    let turnId = '';
    const reading = readSse(`${server.url}/api/v1/chat/streaming?message=long&context_id=cancel-me`, {
      until: (event, events) => {
        if (event.json.type === 'start') turnId = event.json.turn_id;
        if (events.length === 6) void cancel(turnId);
        return false;
      },
    });
    const result = await reading;
    const end = result.events.at(-1)!.json;
    expect(end).toMatchObject({ type: 'end', finish_reason: 'cancelled' });
    expect(end.token_count).toBeLessThan(200);
    expect(end.final_output).toBe(tokensOf(result.events).join(''));
    await expect.poll(() => fake.closedConnections()).toBeGreaterThan(closedBefore);

    const conversation = (await getJson(`${server.url}/api/v1/conversations/cancel-me`)).body;
    expect(conversation.turns[0]).toMatchObject({ status: 'cancelled', answer: end.final_output, token_count: end.token_count });

    const again = await cancel(turnId);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ turn_id: turnId, context_id: 'cancel-me', status: 'cancelled' });
  });

  it('ends a wait request with the partial answer and finish_reason cancelled', async () => {
    fake.enqueue(slowTokens(200));
    const waiting = postJson(`${server.url}/api/v1/chat/wait`, { message: 'wait then cancel', context_id: 'cancel-wait' });
    await expect.poll(async () => (await getJson(`${server.url}/api/v1/conversations/cancel-wait`)).status).toBe(200);
    const turnId = (await getJson(`${server.url}/api/v1/conversations/cancel-wait`)).body.turns[0].turn_id;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await cancel(turnId)).body.status).toBe('cancelled');
    const response = await waiting;
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ finish_reason: 'cancelled', turn_id: turnId });
  });

  it('answers 404 for an unknown turn and 422 for a malformed id', async () => {
    expect((await cancel('no-such-turn')).status).toBe(404);
    expect((await cancel('bad%20id')).status).toBe(422);
  });
});

describe('one turn at a time per conversation', () => {
  it('answers 409 CONVERSATION_BUSY to a different message while the answer is generating', async () => {
    fake.enqueue(slowTokens(30));
    const streaming = readSse(`${server.url}/api/v1/chat/streaming?message=first&context_id=busy`);
    await expect.poll(async () => (await getJson(`${server.url}/api/v1/conversations/busy`)).status).toBe(200);
    const other = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'second', context_id: 'busy' });
    expect(other.status).toBe(409);
    expect(other.body.error_code).toBe('CONVERSATION_BUSY');

    const same = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'first', context_id: 'busy' });
    const streamed = await streaming;
    expect(same.status).toBe(200);
    expect(same.body.turn_id).toBe(streamed.events[0]!.json.turn_id);
    expect(same.body.message).toBe(streamed.events.at(-1)!.json.final_output);

    const after = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'second', context_id: 'busy' });
    expect(after.status).toBe(200);
  });

  it('makes sends idempotent with client_message_id: the model is called once', async () => {
    const requestsBefore = fake.requests.length;
    const body = { message: 'only once', context_id: 'idempotent', client_message_id: 'send-42' };
    const [first, retry] = await Promise.all([
      postJson(`${server.url}/api/v1/chat/wait`, body),
      postJson(`${server.url}/api/v1/chat/wait`, body),
    ]);
    const late = await postJson(`${server.url}/api/v1/chat/wait`, body);
    expect(first.status).toBe(200);
    expect(retry.body.turn_id).toBe(first.body.turn_id);
    expect(late.body.turn_id).toBe(first.body.turn_id);
    expect(late.body.message).toBe(first.body.message);
    expect(fake.requests.length - requestsBefore).toBe(1);

    const streamed = await readSse(`${server.url}/api/v1/chat/streaming`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(streamed.events[0]!.json).toMatchObject({ resumed: true, turn_id: first.body.turn_id });
    expect(streamed.events.at(-1)!.json.final_output).toBe(first.body.message);
    expect(fake.requests.length - requestsBefore).toBe(1);
  });

  it('refuses a client_message_id sent again with a different message (409 IDEMPOTENCY_KEY_REUSED), over wait and streaming', async () => {
    const key = { context_id: 'key-reuse', client_message_id: 'send-9' };
    const first = await postJson(`${server.url}/api/v1/chat/wait`, { ...key, message: 'first question' });
    expect(first.status).toBe(200);
    const requestsBefore = fake.requests.length;

    const waited = await postJson(`${server.url}/api/v1/chat/wait`, { ...key, message: 'a different question' });
    expect(waited.status).toBe(409);
    expect(waited.body).toMatchObject({ error_code: 'IDEMPOTENCY_KEY_REUSED', request_id: expect.any(String) });
    expect(waited.body.message).toContain('client_message_id');
    const streamed = await postJson(`${server.url}/api/v1/chat/streaming`, { ...key, message: 'a different question' });
    expect(streamed.status).toBe(409);
    expect(streamed.body).toMatchObject({ error_code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(fake.requests.length).toBe(requestsBefore);

    // The same message with the same key still gets the first answer.
    const again = await postJson(`${server.url}/api/v1/chat/wait`, { ...key, message: 'first question' });
    expect(again.body).toMatchObject({ turn_id: first.body.turn_id, message: first.body.message });
    const turns = (await getJson(`${server.url}/api/v1/conversations/key-reuse`)).body.turns;
    expect(turns.map((turn: { user_message: string }) => turn.user_message)).toEqual(['first question']);
  });

  it('refuses a different message under the key of a turn still generating', async () => {
    fake.enqueue(slowTokens(60));
    const key = { context_id: 'key-reuse-live', client_message_id: 'send-10' };
    const reading = readSse(`${server.url}/api/v1/chat/streaming`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...key, message: 'a long answer' }),
      until: (_event, events) => events.length === 3,
    });
    await reading;
    const other = await postJson(`${server.url}/api/v1/chat/streaming`, { ...key, message: 'something else' });
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ error_code: 'IDEMPOTENCY_KEY_REUSED' });
    const waited = await postJson(`${server.url}/api/v1/chat/wait`, { ...key, message: 'something else' });
    expect(waited.body).toMatchObject({ error_code: 'IDEMPOTENCY_KEY_REUSED' });
    const same = await postJson(`${server.url}/api/v1/chat/wait`, { ...key, message: 'a long answer' });
    expect(same.status).toBe(200);
  });
});
