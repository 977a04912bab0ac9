import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorBodySchema } from '../src/protocol/responses.js';
import { StoreUnavailableError } from '../src/errors.js';
import { MemoryConversationStore } from '../src/store/memory-store.js';
import { startFakeOpenAI, type FakeOpenAIServer, type FakeReply } from './support/fake-openai-server.js';
import { readSse } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

// Issue 12, point 5: every JSON error body says whether the same request, sent again, may succeed,
// so clients stop guessing from status codes; and a failure says the same in a body and in a stream.

const servers: TestServer[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(env: Record<string, string>, options: Parameters<typeof startTestServer>[1] = {}) {
  const server = await startTestServer(env, options);
  servers.push(server);
  return server;
}

/** Checks an error answer: its status, and a body of exactly the documented fields with this code and retryable. */
function expectError(response: { status: number; body: unknown }, status: number, code: string, retryable: boolean) {
  expect(response.status, JSON.stringify(response.body)).toBe(status);
  const body = errorBodySchema.strict().parse(response.body);
  expect(body.error_code).toBe(code);
  expect(body.retryable, code).toBe(retryable);
}

/** Sends raw bytes on a new connection and resolves with the status and JSON body of the first answer. */
async function rawAnswer(url: string, bytes: string) {
  const socket = net.connect({ host: '127.0.0.1', port: Number(new URL(url).port) });
  sockets.push(socket);
  socket.on('error', () => {});
  let received = '';
  const answered = new Promise<string>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      const head = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received)?.[1];
      if (head >= 0 && length !== undefined && Buffer.byteLength(received.slice(head + 4)) >= Number(length)) resolve(received);
    });
    socket.on('close', () => resolve(received));
  });
  socket.write(bytes);
  const answer = await answered;
  return {
    status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]),
    body: JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as unknown,
  };
}

describe('errors a request cannot cure by being sent again', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ MAX_BODY_BYTES: '4096' });
  });
  afterAll(() => server.close());
  const wait = (body: unknown, headers: Record<string, string> = {}) => postJson(`${server.url}/api/v1/chat/wait`, body, headers);

  it('say retryable false for invalid input', async () => {
    expectError(await wait({}), 422, 'VALIDATION_ERROR', false);
    expectError(await wait('{"message": '), 422, 'VALIDATION_ERROR', false);
    expectError(await wait({ message: ' \n ' }), 400, 'EMPTY_MESSAGE', false);
    expectError(await wait({ message: 'x'.repeat(8000) }), 413, 'PAYLOAD_TOO_LARGE', false);
    expectError(await wait('message=hi', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE', false);
    expectError(await getJson(`${server.url}/api/v1/%E0%A4%A`), 400, 'BAD_REQUEST', false);
  });

  it('say retryable false for what does not exist: unknown routes (also when answered before their body), conversations and turns', async () => {
    expectError(await getJson(`${server.url}/api/v1/nothing-here`), 404, 'NOT_FOUND', false);
    expectError(await getJson(`${server.url}/api/v1/conversations/never-made`), 404, 'NOT_FOUND', false);
    expectError(await postJson(`${server.url}/api/v1/chat/turns/no-such-turn/cancel`, {}), 404, 'NOT_FOUND', false);
    const early = await rawAnswer(
      server.url,
      'POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
    );
    expectError(early, 404, 'NOT_FOUND', false);
  });

  it('say retryable false for a reused idempotency key', async () => {
    expect((await wait({ message: 'first', context_id: 'keyed', client_message_id: 'key-1' })).status).toBe(200);
    expectError(await wait({ message: 'second', context_id: 'keyed', client_message_id: 'key-1' }), 409, 'IDEMPOTENCY_KEY_REUSED', false);
  });

  it('say retryable false for malformed HTTP and oversized headers, answered before Fastify', async () => {
    expectError(await rawAnswer(server.url, 'NOT HTTP AT ALL\r\n\r\n'), 400, 'BAD_REQUEST', false);
    expectError(
      await rawAnswer(server.url, `GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`),
      431,
      'BAD_REQUEST',
      false,
    );
  });

  it('say retryable false for a missing key, another site and another host name', async () => {
    const keyed = await start({ API_KEYS: 'retryable-key-123456' });
    expectError(await postJson(`${keyed.url}/api/v1/chat/wait`, { message: 'hi' }), 401, 'UNAUTHORIZED', false);
    const origin = await wait({ message: 'hi' }, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' });
    expectError(origin, 403, 'ORIGIN_NOT_ALLOWED', false);
    expectError(
      await rawAnswer(server.url, 'GET /api/v1/conversations HTTP/1.1\r\nHost: evil.example\r\n\r\n'),
      403,
      'HOST_NOT_ALLOWED',
      false,
    );
  });
});

describe('errors that may pass', () => {
  it('say retryable true for a busy conversation and too many generating answers', async () => {
    const server = await start({ DEMO_TOKENS_PER_SECOND: '20', MAX_GENERATING_TURNS_PER_CLIENT: '1' });
    const streaming = readSse(
      `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 100000 tokens')}&context_id=busy`,
    );
    await expect.poll(async () => (await getJson(`${server.url}/api/v1/conversations/busy`)).status).toBe(200);
    expectError(
      await postJson(`${server.url}/api/v1/chat/wait`, { message: 'another', context_id: 'busy' }),
      409,
      'CONVERSATION_BUSY',
      true,
    );
    expectError(
      await postJson(`${server.url}/api/v1/chat/wait`, { message: 'elsewhere', context_id: 'other' }),
      429,
      'TOO_MANY_GENERATING_TURNS',
      true,
    );
    const turnId = (await getJson(`${server.url}/api/v1/conversations/busy`)).body.turns[0].turn_id as string;
    expect((await postJson(`${server.url}/api/v1/chat/turns/${turnId}/cancel`, {})).status).toBe(200);
    expect((await streaming).events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'cancelled' });
  });

  it('say retryable true for a rate limit, with Retry-After', async () => {
    const server = await start({ RATE_LIMIT_REQUESTS_PER_MINUTE: '1', RATE_LIMIT_BURST: '1' });
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'one' })).status).toBe(200);
    const limited = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'two' });
    expectError(limited, 429, 'RATE_LIMITED', true);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('say retryable true for a connection over MAX_CONNECTIONS_PER_CLIENT', async () => {
    const server = await start({ MAX_CONNECTIONS_PER_CLIENT: '1' });
    const probe = 'GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n';
    expect((await rawAnswer(server.url, probe)).status).toBe(200);
    expectError(await rawAnswer(server.url, probe), 429, 'RATE_LIMITED', true);
  });

  it('say retryable true for a request that did not arrive within REQUEST_TIMEOUT_SECONDS (408)', async () => {
    const server = await start({ REQUEST_TIMEOUT_SECONDS: '1' });
    const stalled = await rawAnswer(
      server.url,
      'POST /api/v1/chat/wait HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"message":',
    );
    expectError(stalled, 408, 'BAD_REQUEST', true);
  });

  it('say retryable true when the store cannot serve now, and for our own failures', async () => {
    class FullDiskStore extends MemoryConversationStore {
      override async listConversations(): Promise<never> {
        throw new StoreUnavailableError('The conversation store cannot be written (is the disk full?). Please try again later.');
      }
    }
    class BuggyStore extends MemoryConversationStore {
      override async listConversations(): Promise<never> {
        throw new Error('a bug');
      }
    }
    const full = await start({}, { store: new FullDiskStore() });
    expectError(await getJson(`${full.url}/api/v1/conversations`), 503, 'STORE_UNAVAILABLE', true);
    const buggy = await start({}, { store: new BuggyStore() });
    expectError(await getJson(`${buggy.url}/api/v1/conversations`), 500, 'INTERNAL_ERROR', true);
  });
});

describe('model failures', () => {
  let fake: FakeOpenAIServer;
  let server: TestServer;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    server = await startTestServer({
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      RESPONSE_TIMEOUT_SECONDS: '1',
      UPSTREAM_MAX_RETRIES: '2',
    });
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
  });

  const failures: { name: string; replies: FakeReply[]; status: number; code: string; retryable: boolean }[] = [
    {
      name: 'a provider that keeps failing',
      replies: Array<FakeReply>(3).fill({ kind: 'status', status: 500 }),
      status: 502,
      code: 'UPSTREAM_ERROR',
      retryable: true,
    },
    {
      name: 'a provider that refuses the key',
      replies: [{ kind: 'status', status: 401 }],
      status: 503,
      code: 'MODEL_UNAVAILABLE',
      retryable: false,
    },
    {
      name: 'a provider that refuses the request',
      replies: [{ kind: 'status', status: 400 }],
      status: 502,
      code: 'UPSTREAM_ERROR',
      retryable: false,
    },
    { name: 'a provider that sends nothing', replies: [{ kind: 'hang' }], status: 504, code: 'UPSTREAM_TIMEOUT', retryable: true },
  ];

  for (const failure of failures) {
    it(`say the same retryable (${failure.retryable}) in the JSON body and in the stream's error event for ${failure.name}`, async () => {
      fake.enqueue(...failure.replies);
      expectError(
        await postJson(`${server.url}/api/v1/chat/wait`, { message: `wait: ${failure.name}` }),
        failure.status,
        failure.code,
        failure.retryable,
      );
      fake.enqueue(...failure.replies);
      const streamed = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(`stream: ${failure.name}`)}`);
      expect(streamed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: failure.code, retryable: failure.retryable });
    });
  }

  it('say retryable false when the same client_message_id is sent again after its turn failed: the answer would be the same failure', async () => {
    fake.enqueue(...Array<FakeReply>(3).fill({ kind: 'status', status: 500 }));
    const send = { message: 'fails once and for all', context_id: 'decided', client_message_id: 'decided-1' };
    expectError(await postJson(`${server.url}/api/v1/chat/wait`, send), 502, 'UPSTREAM_ERROR', true);
    const again = await postJson(`${server.url}/api/v1/chat/wait`, send);
    expectError(again, 502, 'UPSTREAM_ERROR', false);
    expect(again.body.message).toContain('new client_message_id');
  });
});
