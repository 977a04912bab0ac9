import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';

/** One raw HTTP exchange: what was sent is whatever the generators made, bytes included. */
interface Probe {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
  requestId: string | undefined;
}

let server: SpawnedServer;
let port = 0;

beforeAll(async () => {
  server = spawnServer({
    DEMO_TOKENS_PER_SECOND: '0',
    DEMO_RESPONSE_TOKENS: '5',
    RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
    MAX_STREAMS_PER_CLIENT: '0',
    MAX_GENERATING_TURNS_PER_CLIENT: '0',
    MAX_BODY_BYTES: '65536',
  });
  port = Number(new URL(await server.url).port);
});
afterAll(() => server.child.kill('SIGKILL'));

function send(probe: Probe): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, method: probe.method, path: probe.path, headers: probe.headers, timeout: 15_000, agent: false },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: String(response.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
            requestId: response.headers['x-request-id'] as string | undefined,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`hang: ${probe.method} ${probe.path}`)));
    request.on('error', (error: Error) => {
      // A request too large to parse is answered before its method is known, with a body a HEAD client does not expect.
      if (probe.method === 'HEAD' && error.message.startsWith('Parse Error'))
        resolve({ status: 431, contentType: '', body: '', requestId: undefined });
      else reject(error);
    });
    request.end(probe.body);
  });
}

const ROUTES = [
  '/api/v1/chat/wait',
  '/api/v1/chat/streaming',
  '/api/v1/conversations',
  '/api/v1/conversations/{id}',
  '/api/v1/chat/turns/{id}/cancel',
  '/health',
  '/api/v1/nothing',
  '/docs/../../etc/passwd',
];

const odd = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\u202e',
    '\ud800',
    '../..',
    '%00',
    '%2e%2e%2f',
    '\t\n',
    'é'.repeat(300),
    'x'.repeat(5000),
    '{}',
    '[]',
    'null',
  ),
);
const jsonValue = fc.jsonValue({ maxDepth: 4 });
const deepJson = fc.integer({ min: 1, max: 20_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth));
const invalidUtf8 = fc
  .uint8Array({ minLength: 1, maxLength: 200 })
  .map((bytes) => Buffer.concat([Buffer.from('{"message":"'), Buffer.from(bytes), Buffer.from('\xff\xfe"}', 'latin1')]));

const body = fc.oneof(
  fc.constant(undefined),
  jsonValue.map((value) => Buffer.from(JSON.stringify(value))),
  fc
    .record(
      {
        message: fc.oneof(odd, jsonValue),
        context_id: fc.oneof(odd, jsonValue),
        history: fc.oneof(jsonValue, fc.array(jsonValue)),
        last_token_index: fc.oneof(jsonValue, fc.integer()),
      },
      { requiredKeys: [] },
    )
    .map((value) => Buffer.from(JSON.stringify(value))),
  deepJson.map((text) => Buffer.from(text)),
  invalidUtf8,
  odd.map((text) => Buffer.from(text)),
  fc.integer({ min: 60_000, max: 200_000 }).map((size) => Buffer.from(`{"message":"${'a'.repeat(size)}"}`)),
);

/** Percent-encodes every byte of the text's UTF-8 (lone surrogates included, which encodeURIComponent refuses). */
const percentEncode = (text: string) => [...Buffer.from(text, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
const queryValue = odd.map(percentEncode);
const query = fc
  .array(
    fc.tuple(
      fc.constantFrom('message', 'context_id', 'last_token_index', 'cursor', 'limit', 'x'),
      fc.oneof(queryValue, fc.constantFrom('-1', '1e309', 'NaN', '99999999999', '%zz', '%E0%A4%A')),
    ),
    { maxLength: 5 },
  )
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([key, value]) => `${key}=${value}`).join('&')}`));

const probe: fc.Arbitrary<Probe> = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
    route: fc.constantFrom(...ROUTES),
    id: fc.oneof(queryValue, fc.constantFrom('%2F..%2F', 'a'.repeat(300), '%00', 'ok-id')),
    query,
    contentType: fc.constantFrom(
      undefined,
      'application/json',
      'application/json; charset=latin1',
      'text/plain',
      'multipart/form-data; boundary=x',
      'application/x-www-form-urlencoded',
      'application/json; charset=utf-8',
      '*/*',
      'garbage',
    ),
    lastEventId: fc.option(fc.oneof(odd, fc.constantFrom('x/1', 'x/start', '../../1', 'a/-1')), { nil: undefined }),
    authorization: fc.option(fc.oneof(odd, fc.constant('Bearer ')), { nil: undefined }),
    requestId: fc.option(odd, { nil: undefined }),
    body,
  })
  .map(({ method, route, id, query: search, contentType, lastEventId, authorization, requestId, body: payload }) => {
    const headers: Record<string, string> = {};
    // Header values must be byte strings without line breaks for the HTTP client to send them at all.
    const headerSafe = (value: string) => value.replace(/[^\x20-\x7e]/g, '?');
    if (contentType) headers['content-type'] = contentType;
    if (lastEventId !== undefined) headers['last-event-id'] = headerSafe(lastEventId);
    if (authorization !== undefined) headers.authorization = headerSafe(authorization);
    if (requestId !== undefined) headers['x-request-id'] = headerSafe(requestId);
    const withBody = method !== 'GET' && method !== 'HEAD' ? payload : undefined;
    if (withBody) headers['content-length'] = String(withBody.length);
    return { method, path: route.replace('{id}', id) + search, headers, body: withBody };
  });

/** Whether a generated request happens to be a valid one (a real send, a list, a health check). */
const ACCEPTABLE_SUCCESS = new Set([200, 204]);

describe('bad input', () => {
  it('gets a 4xx JSON error in the documented format, never a 5xx, a crash or a hang', async () => {
    const before = server.rss();
    let count = 0;
    const check = fc.check(
      fc.asyncProperty(probe, async (generated) => {
        count++;
        const answer = await send(generated);
        const context = `${generated.method} ${generated.path.slice(0, 200)} → ${answer.status} ${answer.body.slice(0, 200)}`;
        expect(answer.status, context).toBeLessThan(500);
        if (ACCEPTABLE_SUCCESS.has(answer.status) || generated.method === 'HEAD' || generated.method === 'OPTIONS') return;
        if (answer.contentType.startsWith('text/html') || answer.contentType.startsWith('text/event-stream')) return;
        expect(answer.status, context).toBeGreaterThanOrEqual(400);
        const error = JSON.parse(answer.body) as { error_code: string; message: string; request_id: string };
        expect(error.error_code, context).toMatch(/^[A-Z_]+$/);
        expect(error.message.length, context).toBeGreaterThan(5);
        expect(error.request_id, context).toBeTruthy();
        expect(answer.body, context).not.toMatch(/node_modules|\.ts:\d+|at \w+ \(|SQLITE|FST_ERR/);
      }),
      { numRuns: 2500, seed: Number(process.env.FUZZ_SEED ?? 1125), endOnFailure: true },
    );
    const result = await check;
    // The counterexample can be megabytes long: report its start and the assertion that failed.
    if (result.failed)
      throw new Error(
        `${String(result.errorInstance).slice(0, 1500)}\ncounterexample: ${JSON.stringify(result.counterexample).slice(0, 1500)}`,
      );
    expect(count).toBeGreaterThanOrEqual(2500);
    const health = await send({ method: 'GET', path: '/health', headers: {}, body: undefined });
    expect(health.status).toBe(200);
    const growth = server.rss() - before;
    console.log(`${count} generated requests: server RSS grew by ${(growth / 1e6).toFixed(1)} MB`);
    expect(growth).toBeLessThan(120_000_000);
  }, 300_000);
});
