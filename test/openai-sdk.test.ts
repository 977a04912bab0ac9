import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_CREATED } from '../src/server/routes/openai.js';
import { openAIInFrontOfFake } from './support/openai-fixture.js';
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
    // A constant, so that every instance behind a load balancer lists the model alike.
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'chatwait', created: MODEL_CREATED });
    expect((await client.models.retrieve('chatwait-demo')).id).toBe('chatwait-demo');
    await expect(client.models.retrieve('gpt-4o')).rejects.toMatchObject({ status: 404, code: 'model_not_found', param: null });
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
});

describe('the OpenAI-compatible API in front of a provider', () => {
  const fixture = openAIInFrontOfFake();

  it('sends the system message as the turn instructions and the earlier messages as its history, for that turn only', async () => {
    fixture.fake.enqueue({ kind: 'stream', tokens: ['Bonjour', '!'] }, { kind: 'stream', tokens: ['Hi'] });
    const answer = await fixture.client.chat.completions.create({
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
    expect(fixture.fake.requests.at(-1)!.body.messages).toEqual([
      { role: 'system', content: 'Answer in French.\n\nBe brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Salut' },
      { role: 'user', content: 'How are you?' },
    ]);
    // ChatWait's own routes keep the configured instructions.
    const native = await fetch(`${fixture.server.url}/api/v1/chat/wait`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'Hello' }),
    });
    expect(native.status).toBe(200);
    expect(fixture.fake.requests.at(-1)!.body.messages![0]).toEqual({ role: 'system', content: 'Configured prompt.' });
  });

  it("sends a usage object when the provider reports none: the answer's token_count as completion tokens", async () => {
    fixture.fake.enqueue(
      { kind: 'stream', tokens: ['No', ' usage', '.'], noUsage: true },
      { kind: 'stream', tokens: ['Still', ' none'], noUsage: true },
    );
    const answer = await fixture.client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'Count' }] });
    expect(answer.usage).toEqual({ prompt_tokens: 0, completion_tokens: 3, total_tokens: 3 });
    const stream = await fixture.client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Count again' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 0, completion_tokens: 2, total_tokens: 2 } });
  });
});
