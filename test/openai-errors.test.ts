import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRST_EVENT_HOLD_MS } from '../src/server/openai-first-event.js';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { openAIInFrontOfFake } from './support/openai-fixture.js';
import { startTestServer, type TestServer } from './support/test-server.js';

// The OpenAI-compatible API's failures through OpenAI's own SDK: the error bodies and statuses, a provider
// failing before or after the first token, and the limits.

describe('the OpenAI-compatible API refusing requests', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: 'sk-test-key' });
    client = new OpenAI({ apiKey: 'sk-test-key', baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  afterAll(() => server.close());

  it('answers errors in OpenAI format with the statuses OpenAI uses', async () => {
    const wrongKey = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const unauthorized = await wrongKey.models.list().catch((error: unknown) => error);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unauthorized).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'invalid_request_error' });

    const unknownModel = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .catch((error: unknown) => error);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknownModel).toMatchObject({ status: 404, code: 'model_not_found', param: null });

    const image = await client.chat.completions
      .create({
        model: 'chatwait-demo',
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }],
      })
      .catch((error: unknown) => error);
    expect(image).toBeInstanceOf(OpenAI.BadRequestError);
    expect(image).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'messages[0].content[0].type' });
    expect((image as Error).message).toContain('Content parts of type "image_url" are not supported');

    const noMessages = await client.chat.completions.create({ model: 'chatwait-demo', messages: [] }).catch((error: unknown) => error);
    expect(noMessages).toMatchObject({ status: 400, param: 'messages', code: 'validation_error' });

    const lastNotUser = await client.chat.completions
      .create({ model: 'chatwait-demo', messages: [{ role: 'assistant', content: 'hi' }] })
      .catch((error: unknown) => error);
    expect(lastNotUser).toMatchObject({ status: 400, param: 'messages[0].role' });
  });

  it('refuses a request with its own tools with a clear 400, and starts no turn', async () => {
    const refused = await client.chat.completions
      .create({
        model: 'chatwait-demo',
        messages: [{ role: 'user', content: 'What is the weather?' }],
        tools: [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: {} } } }],
      })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ status: 400, param: 'tools', code: 'bad_request' });
    expect((refused as Error).message).toContain('tools are not supported');
    const listed = await fetch(`${server.url}/api/v1/conversations`, { headers: { authorization: 'Bearer sk-test-key' } });
    const { conversations } = (await listed.json()) as { conversations: { title: string }[] };
    expect(conversations.some((conversation) => conversation.title.includes('weather'))).toBe(false);
  });

  it('answers an unknown path under /v1 with an OpenAI 404', async () => {
    const response = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { authorization: 'Bearer sk-test-key' } });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'not_found', param: null } });
  });
});

describe('the OpenAI-compatible API when its provider fails', () => {
  const fixture = openAIInFrontOfFake();

  it('ends a stream whose provider fails mid-answer with an OpenAI error event the SDK throws', async () => {
    fixture.fake.enqueue({ kind: 'broken', tokens: ['Half', ' an'] });
    const stream = await fixture.client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Break' }],
      stream: true,
    });
    const received: string[] = [];
    const failure = await (async () => {
      for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? '');
    })().catch((error: unknown) => error);
    expect(received.join('')).toBe('Half an');
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(failure).toMatchObject({ type: 'server_error', code: 'upstream_error' });
  });

  it('answers a provider failure before the first token with its status in OpenAI format', async () => {
    fixture.fake.enqueue({ kind: 'status', status: 401, message: 'bad provider key' });
    const failure = await fixture.client.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'Fail' }] })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(failure).toMatchObject({ status: 503, type: 'server_error', code: 'model_unavailable' });
  });

  it('answers a streamed request whose provider fails before the first token with the status, not an error event', async () => {
    fixture.fake.enqueue({ kind: 'status', status: 403, message: 'no access to this model' });
    const failure = await fixture.client.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'Fail streaming' }], stream: true })
      .withResponse()
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OpenAI.InternalServerError);
    expect(failure).toMatchObject({ status: 503, type: 'server_error', code: 'model_unavailable' });
    const headers = (failure as InstanceType<typeof OpenAI.APIError>).headers!;
    expect(headers.get('content-type')).toContain('application/json');
    expect(headers.get('x-should-retry')).toBe('false');
    // The turn is stored, failed, under the conversation the headers name.
    const contextId = headers.get('x-chatwait-conversation-id')!;
    const stored = await fetch(`${fixture.server.url}/api/v1/conversations/${contextId}`);
    const { turns } = (await stored.json()) as { turns: { turn_id: string; status: string }[] };
    expect(turns).toEqual([expect.objectContaining({ turn_id: headers.get('x-chatwait-turn-id'), status: 'error' })]);
  });
});

describe('the OpenAI-compatible API when its provider fails after the headers were held', () => {
  it('streams past the hold and ends a later failure before any token with an error event', async () => {
    const fake = await startFakeOpenAI();
    // The answer times out a second after the headers stopped waiting for the first event.
    const server = await startTestServer({
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      RESPONSE_TIMEOUT_SECONDS: String(FIRST_EVENT_HOLD_MS / 1000 + 1),
    });
    try {
      fake.enqueue({ kind: 'hang' });
      const client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
      const { data: stream, response } = await client.chat.completions
        .create({ model: 'fake-model', messages: [{ role: 'user', content: 'Hang' }], stream: true })
        .withResponse();
      expect(response.status).toBe(200);
      const received: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
      const failure = await (async () => {
        for await (const chunk of stream) received.push(chunk);
      })().catch((error: unknown) => error);
      expect(received.map((chunk) => chunk.choices[0]!.delta)).toEqual([{ role: 'assistant', content: '' }]);
      expect(failure).toBeInstanceOf(OpenAI.APIError);
      expect(failure).toMatchObject({ type: 'server_error', code: 'upstream_timeout' });
    } finally {
      await server.close();
      await fake.close();
    }
  });
});

describe('the OpenAI-compatible API under rate limits', () => {
  it('answers a client over the message rate with 429 rate_limit_exceeded and Retry-After', async () => {
    const server = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '1', RATE_LIMIT_BURST: '1' });
    try {
      const client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
      await client.chat.completions.create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'first' }] });
      const limited = await client.chat.completions
        .create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'second' }] })
        .catch((error: unknown) => error);
      expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
      expect(limited).toMatchObject({ status: 429, type: 'requests', code: 'rate_limit_exceeded' });
      expect(Number((limited as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });

  it('caps the open streams of a client as the native stream does', async () => {
    const server = await startTestServer({ MAX_STREAMS_PER_CLIENT: '1', DEMO_TOKENS_PER_SECOND: '50' });
    try {
      const client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
      const open = await client.chat.completions.create({
        model: 'chatwait-demo',
        messages: [{ role: 'user', content: 'a' }],
        stream: true,
      });
      const iterator = open[Symbol.asyncIterator]();
      await iterator.next();
      const refused = await client.chat.completions
        .create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'b' }], stream: true })
        .catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
      expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
      open.controller.abort();
    } finally {
      await server.close();
    }
  });
});
