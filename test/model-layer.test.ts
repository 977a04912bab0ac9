import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_INSTRUCTIONS } from '../src/model/create-model.js';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

let fake: FakeOpenAIServer;
let server: TestServer;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  server = await startTestServer({
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_MODEL: 'fake-model',
    RESPONSE_TIMEOUT_SECONDS: '1',
    UPSTREAM_MAX_RETRIES: '2',
    MAX_OUTPUT_TOKENS: '512',
  });
});
afterAll(async () => {
  await server.close();
  await fake.close();
});
afterEach(() => {
  fake.requests.length = 0;
});

const stream = (message: string, context = '') =>
  readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}${context ? `&context_id=${context}` : ''}`);

describe('the model layer against an OpenAI-compatible server', () => {
  it('relays every delta exactly as the model produced it, whitespace and Unicode included', async () => {
    const tokens = ['Hé', 'llo', ' ', '\n\n', '  ', 'wörld', ' 👋', '\t', '```js\n', 'x', '"quoted"', '\\'];
    fake.enqueue({ kind: 'stream', tokens });
    const result = await stream('relay please');
    expect(tokensOf(result.events)).toEqual(tokens);
    const end = result.events.at(-1)!.json;
    expect(end).toMatchObject({ type: 'end', final_output: tokens.join(''), token_count: tokens.length, model: 'fake-model' });
    expect(end.usage).toEqual({ input_tokens: 11, output_tokens: tokens.length, total_tokens: 11 + tokens.length });
    const stored = await server.store.getConversation(end.context_id);
    expect(stored!.turns[0]!.answer).toBe(tokens.join(''));
  });

  it('sends the ChatWait instructions, the conversation and the output limit to the model', async () => {
    await postJson(`${server.url}/api/v1/chat/wait`, { message: 'first question', context_id: 'layer-history' });
    await postJson(`${server.url}/api/v1/chat/wait`, { message: 'second question', context_id: 'layer-history' });
    const request = fake.requests.at(-1)!;
    expect(request.path).toBe('/v1/chat/completions');
    expect(request.body).toMatchObject({ model: 'fake-model', stream: true });
    expect(request.body.max_tokens ?? request.body.max_completion_tokens).toBe(512);
    const messages = request.body.messages!;
    expect(messages[0]).toEqual({ role: 'system', content: DEFAULT_INSTRUCTIONS });
    expect(messages.slice(1).map((message) => message.role)).toEqual(['user', 'assistant', 'user']);
    expect(JSON.stringify(messages[1])).toContain('first question');
    expect(JSON.stringify(messages[2])).toContain('Hello from the fake model.');
    expect(JSON.stringify(messages[3])).toContain('second question');
  });

  it('uses client-managed history instead of the stored conversation', async () => {
    await postJson(`${server.url}/api/v1/chat/wait`, {
      message: 'and now?',
      context_id: 'layer-history',
      history: [
        { role: 'user', content: 'client said' },
        { role: 'assistant', content: 'client answer' },
      ],
    });
    const messages = fake.requests.at(-1)!.body.messages!;
    expect(messages).toHaveLength(4);
    expect(JSON.stringify(messages)).toContain('client answer');
    expect(JSON.stringify(messages)).not.toContain('first question');
  });

  it('retries a 429 and a 500 before the first token, then answers', async () => {
    fake.enqueue({ kind: 'status', status: 429 }, { kind: 'status', status: 500 }, { kind: 'stream', tokens: ['recovered'] });
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'retry me' });
    expect(response.status).toBe(200);
    expect(response.body.message).toBe('recovered');
    expect(fake.requests).toHaveLength(3);
  });

  it('gives up after the bounded retries with a retryable UPSTREAM_ERROR and nothing internal', async () => {
    fake.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'always failing' });
    expect(response.status).toBe(502);
    expect(response.body.error_code).toBe('UPSTREAM_ERROR');
    expect(response.body.message).not.toMatch(/secret|fake upstream|stack/i);
    expect(response.body.request_id).toBe(response.headers.get('x-request-id'));
    expect(fake.requests).toHaveLength(3);
  });

  it('reports an upstream failure on a stream as a retryable error event', async () => {
    fake.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const result = await stream('failing stream');
    expect(result.status).toBe(200);
    const error = result.events.at(-1)!;
    expect(error.json).toMatchObject({ type: 'error', event_type: 'error', error_code: 'UPSTREAM_ERROR', retryable: true });
    expect(error.id).toBe(`${result.events[0]!.json.turn_id}/0`);
  });

  it('answers MODEL_UNAVAILABLE without retrying when the provider rejects the key', async () => {
    fake.enqueue({ kind: 'status', status: 401 });
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'bad key' });
    expect(response.status).toBe(503);
    expect(response.body.error_code).toBe('MODEL_UNAVAILABLE');
    expect(response.body.message).toContain('API_KEY');
    expect(fake.requests).toHaveLength(1);
  });

  it('ends a stream broken mid-answer with a retryable error and stores the partial answer as interrupted', async () => {
    fake.enqueue({ kind: 'broken', tokens: ['Partial', ' answer'] });
    const result = await stream('break please', 'broken-conversation');
    expect(tokensOf(result.events)).toEqual(['Partial', ' answer']);
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'UPSTREAM_ERROR', retryable: true });
    const stored = await server.store.getConversation('broken-conversation');
    expect(stored!.turns[0]).toMatchObject({ status: 'interrupted', answer: 'Partial answer', errorCode: 'UPSTREAM_ERROR' });

    const next = await stream('still there?', 'broken-conversation');
    expect(next.events.at(-1)!.json.type).toBe('end');
  });

  it('treats an empty answer as an error, never a blank reply', async () => {
    fake.enqueue({ kind: 'empty' });
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'say nothing' });
    expect(response.status).toBe(502);
    expect(response.body.error_code).toBe('UPSTREAM_ERROR');
    expect(response.body.message).toMatch(/empty answer/);
    expect(fake.requests).toHaveLength(1);
  });

  it('times out a model that sends no first token, and closes the upstream request', async () => {
    fake.enqueue({ kind: 'hang' });
    const closedBefore = fake.closedConnections();
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hang please' });
    expect(response.status).toBe(504);
    expect(response.body.error_code).toBe('UPSTREAM_TIMEOUT');
    await expect.poll(() => fake.closedConnections()).toBeGreaterThan(closedBefore);
  });

  it('times out a stream that stalls after some tokens with an error event', async () => {
    fake.enqueue({ kind: 'hang', tokens: ['Some', ' words'] });
    const result = await stream('stall please', 'stall-conversation');
    expect(tokensOf(result.events)).toEqual(['Some', ' words']);
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'UPSTREAM_TIMEOUT', retryable: true });
    const stored = await server.store.getConversation('stall-conversation');
    expect(stored!.turns[0]).toMatchObject({ status: 'interrupted', answer: 'Some words' });
  });

  it('flushes the start event while the model has not answered yet', async () => {
    fake.enqueue({ kind: 'hang' });
    const response = await fetch(`${server.url}/api/v1/chat/streaming?message=slow`);
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('"type":"start"')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).not.toContain('"type":"token"');
    await reader.cancel();
  });

  it('names the provider and model in /health', async () => {
    const health = (await getJson(`${server.url}/health`)).body;
    expect(health.model).toEqual({ provider: 'openai', name: 'fake-model', demo: false });
  });
});

describe('the Gemini provider', () => {
  it('calls the OpenAI-compatible Gemini endpoint with GEMINI_API_KEY and GEMINI_MODEL', async () => {
    const gemini = await startTestServer({
      GEMINI_API_KEY: 'gemini-test-key',
      GEMINI_BASE_URL: fake.baseUrl,
      GEMINI_MODEL: 'gemini-2.5-flash',
    });
    try {
      const response = await postJson(`${gemini.url}/api/v1/chat/wait`, { message: 'hi gemini' });
      expect(response.status).toBe(200);
      expect(response.body.model).toBe('gemini-2.5-flash');
      const request = fake.requests.at(-1)!;
      expect(request.authorization).toBe('Bearer gemini-test-key');
      expect(request.body.model).toBe('gemini-2.5-flash');
      const health = (await getJson(`${gemini.url}/api/v1/health`)).body;
      expect(health.model).toEqual({ provider: 'gemini', name: 'gemini-2.5-flash', demo: false });
    } finally {
      await gemini.close();
    }
  });

  it('sends SYSTEM_PROMPT instead of the default instructions', async () => {
    const custom = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, SYSTEM_PROMPT: 'You are a pirate.' });
    try {
      await postJson(`${custom.url}/api/v1/chat/wait`, { message: 'ahoy' });
      expect(fake.requests.at(-1)!.body.messages![0]).toEqual({ role: 'system', content: 'You are a pirate.' });
    } finally {
      await custom.close();
    }
  });
});
