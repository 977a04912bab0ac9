import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, type TestServer } from './support/test-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ MAX_BODY_BYTES: '4096' });
});
afterAll(() => server.close());

const wait = (body: unknown, headers: Record<string, string> = {}) => postJson(`${server.url}/api/v1/chat/wait`, body, headers);

/** Every error response has the documented shape, with the request id of its X-Request-ID header. */
function expectErrorFormat(response: Awaited<ReturnType<typeof postJson>>, status: number, code: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  expect(response.body.error_code).toBe(code);
  expect(typeof response.body.message).toBe('string');
  expect(response.body.message.length).toBeGreaterThan(10);
  expect(response.body.request_id).toBe(response.headers.get('x-request-id'));
  expect(JSON.stringify(response.body)).not.toMatch(/at .*\.(ts|js):\d+|node_modules|FST_ERR/);
}

describe('422 VALIDATION_ERROR', () => {
  it('names a missing message', async () => {
    const response = await wait({});
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail).toEqual([{ loc: ['body', 'message'], msg: 'message is required', type: 'missing' }]);
  });

  it('names an empty message', async () => {
    const response = await wait({ message: '' });
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail[0]).toMatchObject({ loc: ['body', 'message'], type: 'string_too_short' });
  });

  it('names a message over 10,000 characters', async () => {
    // This suite's server has a 4 KiB body limit; the default one takes a 10,001-character message.
    const big = await startTestServer();
    try {
      const tooLong = await postJson(`${big.url}/api/v1/chat/wait`, { message: 'x'.repeat(10_001) });
      expectErrorFormat(tooLong, 422, 'VALIDATION_ERROR');
      expect(tooLong.body.detail[0]).toMatchObject({ loc: ['body', 'message'], type: 'string_too_long' });
      const exact = await postJson(`${big.url}/api/v1/chat/wait`, { message: 'x'.repeat(10_000) });
      expect(exact.status).toBe(200);
    } finally {
      await big.close();
    }
  });

  it('names a message of the wrong type', async () => {
    const response = await wait({ message: 42 });
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail[0]).toMatchObject({ loc: ['body', 'message'], type: 'string_type' });
  });

  it('names a bad context_id, with every failing field listed', async () => {
    const response = await wait({ message: 'hi', context_id: '../../etc/passwd', client_message_id: '' });
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail.map((entry: { loc: string[] }) => entry.loc)).toEqual([
      ['body', 'context_id'],
      ['body', 'client_message_id'],
    ]);
  });

  it('names a bad history entry by its index', async () => {
    const response = await wait({
      message: 'hi',
      history: [
        { role: 'user', content: 'ok' },
        { role: 'system', content: 'x' },
      ],
    });
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail[0].loc).toEqual(['body', 'history', 1, 'role']);
  });

  it('rejects malformed JSON', async () => {
    const response = await wait('{"message": "hi"');
    expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    expect(response.body.detail[0]).toMatchObject({ loc: ['body'], type: 'json_invalid' });
  });

  it('rejects a body that is not an object', async () => {
    for (const body of ['[1,2]', '"hello"', 'null', '42']) {
      const response = await wait(body);
      expectErrorFormat(response, 422, 'VALIDATION_ERROR');
    }
  });

  it('rejects a missing body', async () => {
    const response = await fetch(`${server.url}/api/v1/chat/wait`, { method: 'POST' });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { detail: unknown[] };
    expect(body.detail[0]).toMatchObject({ loc: ['body'], type: 'missing' });
  });

  it('accepts null for optional fields, as the original did', async () => {
    const response = await wait({ message: 'hi', context_id: null, history: null, client_message_id: null });
    expect(response.status).toBe(200);
  });
});

describe('the other error codes', () => {
  it('400 EMPTY_MESSAGE for a message of only whitespace', async () => {
    expectErrorFormat(await wait({ message: ' \n\t\u00a0 ' }), 400, 'EMPTY_MESSAGE');
  });

  it('404 NOT_FOUND for an unknown route or method', async () => {
    const unknown = await fetch(`${server.url}/api/v1/nothing-here`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error_code: string }).error_code).toBe('NOT_FOUND');
    const wrongMethod = await fetch(`${server.url}/api/v1/chat/wait`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(404);
    expect(((await wrongMethod.json()) as { error_code: string }).error_code).toBe('NOT_FOUND');
  });

  it('400 BAD_REQUEST for a malformed URL, in the JSON format', async () => {
    const result = await fetch(`${server.url}/api/v1/%E0%A4%A`);
    expect(result.status).toBe(400);
    const body = (await result.json()) as { error_code: string; request_id: string };
    expect(body.error_code).toBe('BAD_REQUEST');
    expect(body.request_id).toBe(result.headers.get('x-request-id'));
  });

  it('413 PAYLOAD_TOO_LARGE for a body over the limit', async () => {
    expectErrorFormat(await wait({ message: 'x'.repeat(8000) }), 413, 'PAYLOAD_TOO_LARGE');
  });

  it('415 UNSUPPORTED_MEDIA_TYPE for a body that is not JSON', async () => {
    expectErrorFormat(await wait('message=hi', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectErrorFormat(await wait('hi', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('accepts JSON with a charset parameter', async () => {
    const response = await wait({ message: 'hi' }, { 'content-type': 'application/json; charset=utf-8' });
    expect(response.status).toBe(200);
  });
});

describe('X-Request-ID', () => {
  it('echoes a valid incoming request id', async () => {
    const response = await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'client-abc.123' } });
    expect(response.headers.get('x-request-id')).toBe('client-abc.123');
  });

  it('replaces an invalid one with a new UUID', async () => {
    const response = await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'bad id <script>' } });
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('is on error responses too', async () => {
    const response = await wait({}, { 'x-request-id': 'trace-422' });
    expect(response.headers.get('x-request-id')).toBe('trace-422');
    expect(response.body.request_id).toBe('trace-422');
  });
});
