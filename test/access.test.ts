import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

describe('API keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: 'first-key-123456,second-key-654321' });
  });
  afterAll(() => server.close());

  it('rejects API requests without a key or with a wrong one', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-key-000000' }, { authorization: 'first-key-123456' }] as Record<string, string>[]) {
      const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hi' }, headers);
      expect(response.status).toBe(401);
      expect(response.body.error_code).toBe('UNAUTHORIZED');
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    }
    const streaming = await fetch(`${server.url}/api/v1/chat/streaming?message=hi`);
    expect(streaming.status).toBe(401);
  });

  it('cannot be bypassed by encoding the path', async () => {
    for (const path of ['/%61pi/v1/chat/wait', '/api/v1/chat/%77ait', '/API/v1/chat/wait', '/api//v1/chat/wait']) {
      const response = await postJson(`${server.url}${path}`, { message: 'hi' });
      expect([401, 404]).toContain(response.status);
      expect(response.body.error_code).not.toBeUndefined();
    }
    const conversations = await getJson(`${server.url}/api/v1/conversations`);
    expect(conversations.status).toBe(401);
  });

  it('accepts any configured key', async () => {
    for (const key of ['first-key-123456', 'second-key-654321']) {
      const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hi' }, { authorization: `Bearer ${key}` });
      expect(response.status).toBe(200);
    }
  });

  it('gives each key only its own conversations: another key gets 404, never the content', async () => {
    const a = { authorization: 'Bearer first-key-123456' };
    const b = { authorization: 'Bearer second-key-654321' };
    const created = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'private to a', context_id: 'owned-by-a' }, a);
    expect(created.status).toBe(200);
    expect((await getJson(`${server.url}/api/v1/conversations/owned-by-a`, a)).status).toBe(200);
    const asB = await getJson(`${server.url}/api/v1/conversations/owned-by-a`, b);
    expect(asB.status).toBe(404);
    expect(JSON.stringify(asB.body)).not.toContain('private to a');
    const listB = (await getJson(`${server.url}/api/v1/conversations`, b)).body;
    expect(listB.conversations.map((conversation: { context_id: string }) => conversation.context_id)).not.toContain('owned-by-a');
    const listA = (await getJson(`${server.url}/api/v1/conversations`, a)).body;
    expect(listA.conversations.map((conversation: { context_id: string }) => conversation.context_id)).toContain('owned-by-a');
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hijack', context_id: 'owned-by-a' }, b)).status).toBe(404);
    const resumed = await fetch(`${server.url}/api/v1/chat/streaming?message=x`, {
      headers: { ...b, 'last-event-id': `${created.body.turn_id}/start` },
    });
    expect(resumed.status).toBe(404);
    expect((await postJson(`${server.url}/api/v1/chat/turns/${created.body.turn_id}/cancel`, {}, b)).status).toBe(404);
    const patched = await fetch(`${server.url}/api/v1/conversations/owned-by-a`, {
      method: 'PATCH',
      headers: { ...b, 'content-type': 'application/json' },
      body: '{"title":"mine now"}',
    });
    expect(patched.status).toBe(404);
    expect((await fetch(`${server.url}/api/v1/conversations/owned-by-a`, { method: 'DELETE', headers: b })).status).toBe(404);
    expect((await getJson(`${server.url}/api/v1/conversations/owned-by-a`, a)).body.title).toBe('private to a');
  });

  it('leaves health and docs open', async () => {
    for (const path of ['/health', '/api/v1/health', '/api/v1/health/live', '/api/v1/health/ready', '/openapi.json']) {
      expect((await getJson(`${server.url}${path}`)).status).toBe(200);
    }
  });
});

describe('CORS', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ALLOWED_ORIGINS: 'https://chat.example.com' });
  });
  afterAll(() => server.close());

  it('allows a configured origin, preflight included', async () => {
    const preflight = await fetch(`${server.url}/api/v1/chat/wait`, {
      method: 'OPTIONS',
      headers: { origin: 'https://chat.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://chat.example.com');
    const response = await fetch(`${server.url}/health`, { headers: { origin: 'https://chat.example.com' } });
    expect(response.headers.get('access-control-allow-origin')).toBe('https://chat.example.com');
  });

  it('gives other origins no CORS headers', async () => {
    const response = await fetch(`${server.url}/health`, { headers: { origin: 'https://evil.example' } });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('puts the CORS headers on the SSE stream too', async () => {
    const response = await fetch(`${server.url}/api/v1/chat/streaming?message=hi`, { headers: { origin: 'https://chat.example.com' } });
    expect(response.headers.get('access-control-allow-origin')).toBe('https://chat.example.com');
    await response.body!.cancel();
  });
});
