import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { startTestServer, type TestServer } from './support/test-server.js';

// The OpenAI-compatible API through OpenAI's own SDK, against a real listening ChatWait.

/** The stored turns of a conversation, as the page reads them. */
async function storedTurns(server: TestServer, contextId: string, key?: string) {
  const response = await fetch(`${server.url}/api/v1/conversations/${contextId}`, {
    headers: key ? { authorization: `Bearer ${key}` } : {},
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { turns: { turn_id: string; user_message: string; answer: string; status: string }[] };
  return body.turns;
}

describe('the OpenAI-compatible API with the demo model', () => {
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: 'sk-test-key' });
    client = new OpenAI({ apiKey: 'sk-test-key', baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  afterAll(() => server.close());

  it('lists the configured model and retrieves it', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toEqual(['chatwait-demo']);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'chatwait' });
    expect((await client.models.retrieve('chatwait-demo')).id).toBe('chatwait-demo');
    await expect(client.models.retrieve('gpt-4o')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  });

  it('answers without streaming as a chat.completion, stored as a turn of a new conversation', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'Hello there' }] })
      .withResponse();
    expect(data.object).toBe('chat.completion');
    expect(data.model).toBe('chatwait-demo');
    expect(data.choices).toHaveLength(1);
    expect(data.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant' } });
    expect(data.usage?.completion_tokens).toBeGreaterThan(0);
    const contextId = response.headers.get('x-chatwait-conversation-id')!;
    const turnId = response.headers.get('x-chatwait-turn-id')!;
    expect(data.id).toBe(`chatcmpl-${turnId}`);
    const [turn] = await storedTurns(server, contextId, 'sk-test-key');
    expect(turn).toMatchObject({
      turn_id: turnId,
      user_message: 'Hello there',
      status: 'complete',
      answer: data.choices[0]!.message.content,
    });
  });

  it('streams the role chunk, the deltas, the finish reason, the usage chunk and [DONE]', async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'chatwait-demo',
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Stream' },
              { type: 'text', text: 'this please' },
            ],
          },
        ],
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const turnId = response.headers.get('x-chatwait-turn-id')!;
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === `chatcmpl-${turnId}`)).toBe(true);
    expect(new Set(chunks.map((chunk) => chunk.created)).size).toBe(1);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]).toMatchObject({ finish_reason: 'stop', delta: {} });
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage!.total_tokens).toBe(usage.usage!.prompt_tokens + usage.usage!.completion_tokens);
    const deltas = chunks.slice(1, -2).map((chunk) => chunk.choices[0]!.delta.content);
    expect(deltas.length).toBeGreaterThan(1);
    expect(chunks.slice(1, -2).every((chunk) => chunk.choices[0]!.finish_reason === null && chunk.usage === null)).toBe(true);
    const contextId = response.headers.get('x-chatwait-conversation-id')!;
    const [turn] = await storedTurns(server, contextId, 'sk-test-key');
    // The text parts are joined with a line break, and the answer streamed is the answer stored.
    expect(turn).toMatchObject({ user_message: 'Stream\nthis please', status: 'complete', answer: deltas.join('') });
  });

  it('continues the conversation the header names: both calls are its turns', async () => {
    const first = await client.chat.completions
      .create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'one' }] })
      .withResponse();
    const contextId = first.response.headers.get('x-chatwait-conversation-id')!;
    const second = await client.chat.completions
      .create(
        {
          model: 'chatwait-demo',
          messages: [
            { role: 'user', content: 'one' },
            { role: 'assistant', content: first.data.choices[0]!.message.content! },
            { role: 'user', content: 'two' },
          ],
        },
        { headers: { 'X-ChatWait-Conversation-Id': contextId } },
      )
      .withResponse();
    expect(second.response.headers.get('x-chatwait-conversation-id')).toBe(contextId);
    const turns = await storedTurns(server, contextId, 'sk-test-key');
    expect(turns.map((turn) => turn.user_message)).toEqual(['one', 'two']);
  });

  it('keeps generating a turn whose stream the client aborts, and stores it complete', async () => {
    const slow = await startTestServer({ DEMO_TOKENS_PER_SECOND: '200', DEMO_RESPONSE_TOKENS: '80' });
    try {
      const slowClient = new OpenAI({ apiKey: 'unused', baseURL: `${slow.url}/v1`, maxRetries: 0 });
      const { data: stream, response } = await slowClient.chat.completions
        .create({ model: 'chatwait-demo', messages: [{ role: 'user', content: 'Tell me a story' }], stream: true })
        .withResponse();
      const received: string[] = [];
      for await (const chunk of stream) {
        received.push(chunk.choices[0]?.delta.content ?? '');
        if (received.length === 4) stream.controller.abort();
      }
      expect(received).toHaveLength(4);
      const contextId = response.headers.get('x-chatwait-conversation-id')!;
      let turns = await storedTurns(slow, contextId);
      for (let attempt = 0; attempt < 200 && turns[0]!.status === 'streaming'; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        turns = await storedTurns(slow, contextId);
      }
      expect(turns[0]!.status).toBe('complete');
      expect(turns[0]!.answer.startsWith(received.join(''))).toBe(true);
      expect(turns[0]!.answer.length).toBeGreaterThan(received.join('').length);
    } finally {
      await slow.close();
    }
  });

  it('answers errors in OpenAI format with the statuses OpenAI uses', async () => {
    const wrongKey = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${server.url}/v1`, maxRetries: 0 });
    const unauthorized = await wrongKey.models.list().catch((error: unknown) => error);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(unauthorized).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'invalid_request_error' });

    const unknownModel = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      .catch((error: unknown) => error);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect(unknownModel).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' });

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

  it('stores a call under the conversation id the header names, new or not', async () => {
    const contextId = `openai-named-${Date.now()}`;
    const { response } = await client.chat.completions
      .create(
        { model: 'chatwait-demo', messages: [{ role: 'user', content: 'named' }] },
        { headers: { 'X-ChatWait-Conversation-Id': contextId } },
      )
      .withResponse();
    expect(response.headers.get('x-chatwait-conversation-id')).toBe(contextId);
    expect((await storedTurns(server, contextId, 'sk-test-key')).map((turn) => turn.user_message)).toEqual(['named']);
    const invalid = await client.chat.completions
      .create(
        { model: 'chatwait-demo', messages: [{ role: 'user', content: 'x' }] },
        { headers: { 'X-ChatWait-Conversation-Id': 'no spaces' } },
      )
      .catch((error: unknown) => error);
    expect(invalid).toMatchObject({ status: 400, param: 'x-chatwait-conversation-id' });
  });

  it('documents the routes in the OpenAPI document', async () => {
    const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { tags: string[] }>>;
    };
    expect(document.paths['/v1/chat/completions']!.post!.tags).toEqual(['openai']);
    expect(document.paths['/v1/models']!.get!.tags).toEqual(['openai']);
  });

  it('runs the README example (examples/openai/chat.mjs) against the server', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [resolve(import.meta.dirname, '../examples/openai/chat.mjs'), 'Hello example'],
      {
        env: { ...process.env, CHATWAIT_URL: server.url, CHATWAIT_API_KEY: 'sk-test-key' },
      },
    );
    const contextId = /conversation (\S+)/.exec(stdout)![1]!;
    const turns = await storedTurns(server, contextId, 'sk-test-key');
    expect(turns.map((turn) => turn.user_message)).toEqual(['Hello example', 'Say it again in five words.']);
    expect(stdout).toContain(turns[0]!.answer);
    expect(stdout).toContain(turns[1]!.answer);
  });

  it('answers an unknown path under /v1 with an OpenAI 404', async () => {
    const response = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { authorization: 'Bearer sk-test-key' } });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'not_found', param: null } });
  });
});

describe('the OpenAI-compatible API in front of a provider', () => {
  let fake: FakeOpenAIServer;
  let server: TestServer;
  let client: OpenAI;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    server = await startTestServer({
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      SYSTEM_PROMPT: 'Configured prompt.',
      TOOLS: 'none',
    });
    client = new OpenAI({ apiKey: 'unused', baseURL: `${server.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
  });

  it('sends the system message as the turn instructions and the earlier messages as its history, for that turn only', async () => {
    fake.enqueue({ kind: 'stream', tokens: ['Bonjour', '!'] }, { kind: 'stream', tokens: ['Hi'] });
    const answer = await client.chat.completions.create({
      model: 'fake-model',
      messages: [
        { role: 'system', content: 'Answer in French.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Salut' },
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: 'How are you?' },
      ],
    });
    expect(answer.choices[0]!.message.content).toBe('Bonjour!');
    expect(fake.requests.at(-1)!.body.messages).toEqual([
      { role: 'system', content: 'Answer in French.\n\nBe brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Salut' },
      { role: 'user', content: 'How are you?' },
    ]);
    // ChatWait's own routes keep the configured instructions.
    const native = await fetch(`${server.url}/api/v1/chat/wait`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Hello' }),
    });
    expect(native.status).toBe(200);
    expect(fake.requests.at(-1)!.body.messages![0]).toEqual({ role: 'system', content: 'Configured prompt.' });
  });

  it('ends a stream whose provider fails mid-answer with an OpenAI error event the SDK throws', async () => {
    fake.enqueue({ kind: 'broken', tokens: ['Half', ' an'] });
    const stream = await client.chat.completions.create({
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
    fake.enqueue({ kind: 'status', status: 401, message: 'bad provider key' });
    const failure = await client.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'Fail' }] })
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(failure).toMatchObject({ status: 503, type: 'server_error', code: 'model_unavailable' });
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
