import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';
import { chatRequests } from './support/tool-stream.js';

let fake: FakeOpenAIServer;
const servers: TestServer[] = [];

beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
  fake.requests.length = 0;
});
afterAll(() => fake.close());

/** A server on the fake with no retries for failures (so any second request is the fallback), and its warnings. */
async function start(): Promise<{ server: TestServer; warnings: Record<string, unknown>[] }> {
  const warnings: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(line: Buffer, _encoding, done) {
      warnings.push(JSON.parse(line.toString()) as Record<string, unknown>);
      done();
    },
  });
  const server = await startTestServer(
    { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'local-model', UPSTREAM_MAX_RETRIES: '0' },
    { logger: pino({ level: 'warn' }, sink) },
  );
  servers.push(server);
  return { server, warnings };
}

const ask = (server: TestServer, message: string) => readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}`);
const offered = (index: number) => chatRequests(fake)[index]!.body.tools;

describe('a provider that refuses tools', () => {
  it('answers without tools after a 400 saying the model does not support them, and remembers it', async () => {
    const { server, warnings } = await start();
    fake.enqueue({ kind: 'status', status: 400, message: 'registry.ollama.ai/library/gemma:2b does not support tools' });
    const first = await ask(server, 'hello');
    expect(tokensOf(first.events).join('')).toBe('Hello from the fake model.');
    expect(chatRequests(fake)).toHaveLength(2);
    expect(offered(0)).toHaveLength(3);
    expect(chatRequests(fake)[1]!.body).not.toHaveProperty('tools');

    const second = await ask(server, 'hello again');
    expect(second.events.at(-1)!.json.type).toBe('end');
    expect(chatRequests(fake)).toHaveLength(3);
    expect(chatRequests(fake)[2]!.body).not.toHaveProperty('tools');

    const toolWarnings = warnings.filter((line) => line.provider_message !== undefined);
    expect(toolWarnings).toHaveLength(1);
    expect(toolWarnings[0]).toMatchObject({
      level: 40,
      provider: 'openai',
      model: 'local-model',
      provider_message: 'registry.ollama.ai/library/gemma:2b does not support tools',
    });
    expect(toolWarnings[0]!.msg).toContain('answering without tools from now on');
  });

  it('offers the tools without `strict` when the provider refuses that field, then without tools if refused again', async () => {
    const { server, warnings } = await start();
    const unknownStrict = `Invalid JSON payload received. Unknown name "strict" at 'tools[0].function_declarations[0]': Cannot find field.`;
    // Gemini's shape: a list holding the error, whose message has a line per tool.
    const geminiBody = JSON.stringify([
      { error: { code: 400, message: `${unknownStrict}\n${unknownStrict.replace("[0]'", "[1]'")}`, status: 'INVALID_ARGUMENT' } },
    ]);
    fake.enqueue({ kind: 'status', status: 400, body: geminiBody });
    await ask(server, 'first');
    expect(chatRequests(fake)).toHaveLength(2);
    expect(offered(0)!.every((tool) => tool.function.strict === true)).toBe(true);
    expect(offered(1)).toHaveLength(3);
    expect(offered(1)!.some((tool) => 'strict' in tool.function)).toBe(false);

    await ask(server, 'second');
    expect(offered(2)!.some((tool) => 'strict' in tool.function)).toBe(false);

    // vLLM's shape: the error fields at the top level.
    fake.enqueue({
      kind: 'status',
      status: 400,
      body: JSON.stringify({
        object: 'error',
        message: '"auto" tool choice requires --enable-auto-tool-choice',
        type: 'BadRequestError',
        code: 400,
      }),
    });
    const third = await ask(server, 'third');
    expect(third.events.at(-1)!.json.type).toBe('end');
    expect(chatRequests(fake)).toHaveLength(5);
    expect(chatRequests(fake)[4]!.body).not.toHaveProperty('tools');
    expect(warnings.filter((line) => line.provider_message !== undefined).map((line) => line.provider_message)).toEqual([
      unknownStrict,
      '"auto" tool choice requires --enable-auto-tool-choice',
    ]);
  });

  it('keeps offering tools after a 400 that is not about them, and fails that turn as before', async () => {
    const { server, warnings } = await start();
    fake.enqueue({ kind: 'status', status: 400, message: 'This model maximum context length is 8192 tokens' });
    const failed = await ask(server, 'too long');
    expect(failed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'UPSTREAM_ERROR', retryable: false });
    expect(chatRequests(fake)).toHaveLength(1);
    await ask(server, 'shorter');
    expect(offered(1)).toHaveLength(3);
    expect(warnings.filter((line) => line.provider_message !== undefined)).toHaveLength(0);
  });

  it('remembers nothing when asking without tools fails too: that 400 was not about the tools', async () => {
    const { server, warnings } = await start();
    const notAboutTools = "Invalid 'messages': the tools and everything else in this request were refused";
    fake.enqueue({ kind: 'status', status: 400, message: notAboutTools });
    fake.enqueue({ kind: 'status', status: 400, message: notAboutTools });
    const failed = await ask(server, 'refused');
    expect(failed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'UPSTREAM_ERROR' });
    expect(chatRequests(fake)).toHaveLength(2);
    expect(chatRequests(fake)[1]!.body).not.toHaveProperty('tools');
    const next = await ask(server, 'next');
    expect(next.events.at(-1)!.json.type).toBe('end');
    expect(offered(2)).toHaveLength(3);
    expect(warnings.filter((line) => line.provider_message !== undefined)).toHaveLength(0);
  });
});
