import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

/** One request over node:http, which (unlike fetch) may set any Host header. */
function rawRequest(url: string, options: { method?: string; path: string; headers?: Record<string, string>; body?: string }) {
  const { port } = new URL(url);
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: false },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        // An SSE stream is read only up to its first event: enough to know it started.
        response.on('data', (chunk: string) => {
          text += chunk;
          if (String(response.headers['content-type']).startsWith('text/event-stream') && text.includes('\n\n')) response.destroy();
        });
        response.on('close', () => resolve({ status: response.statusCode!, headers: response.headers, text }));
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

const streamPath = (contextId: string) => `/api/v1/chat/streaming?message=${encodeURIComponent('spend my model')}&context_id=${contextId}`;

describe('requests from other sites', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: '' });
  });
  afterAll(() => server.close());

  /** Whether a conversation was created (a refused request must not have started a turn). */
  const stored = async (contextId: string) => (await getJson(`${server.url}/api/v1/conversations/${contextId}`)).status === 200;

  it('refuses a cross-site GET to the streaming route (an EventSource from another site) with 403 before a turn starts', async () => {
    const response = await fetch(`${server.url}${streamPath('cross-site-eventsource')}`, {
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', accept: 'text/event-stream' },
    });
    expect(response.status).toBe(403);
    const body = await response.json();
    expect(body).toMatchObject({ error_code: 'ORIGIN_NOT_ALLOWED', request_id: expect.any(String) });
    expect(body.message).toContain('https://evil.example');
    expect(await stored('cross-site-eventsource')).toBe(false);
  });

  it('refuses a no-cors request from another site, which carries no Origin, and an opaque origin (null)', async () => {
    // node:http, as fetch would replace the Sec-Fetch-Mode header with its own.
    const noCors = await rawRequest(server.url, {
      path: streamPath('cross-site-img'),
      headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' },
    });
    expect(noCors.status).toBe(403);
    expect(JSON.parse(noCors.text).error_code).toBe('ORIGIN_NOT_ALLOWED');
    const opaque = await fetch(`${server.url}${streamPath('cross-site-null')}`, { headers: { origin: 'null' } });
    expect(opaque.status).toBe(403);
    expect(await stored('cross-site-img')).toBe(false);
    expect(await stored('cross-site-null')).toBe(false);
  });

  it('refuses a cross-site POST before reading its body, and a page on another port of the same host', async () => {
    const post = await fetch(`${server.url}/api/v1/chat/wait`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(post.status).toBe(403);
    const otherPort = await fetch(`${server.url}/api/v1/conversations`, { headers: { origin: 'http://127.0.0.1:1' } });
    expect(otherPort.status).toBe(403);
    const preflight = await fetch(`${server.url}/api/v1/chat/wait`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(403);
  });

  it("serves the page's own requests: same origin, a same-origin fetch, and a link followed from another site", async () => {
    const sameOrigin = await readSse(`${server.url}${streamPath('own-origin')}`, { headers: { origin: server.url } });
    expect(sameOrigin.status).toBe(200);
    expect(sameOrigin.events.at(-1)!.json.type).toBe('end');
    // Behind a proxy the Origin may not match what the server sees; the browser's Sec-Fetch-Site still says same-origin.
    const proxied = await fetch(`${server.url}/api/v1/conversations`, {
      headers: { origin: 'https://chat.example.com', 'sec-fetch-site': 'same-origin' },
    });
    expect(proxied.status).toBe(200);
    const navigation = { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
    const followedLink = await rawRequest(server.url, { path: '/c/some-conversation', headers: navigation });
    expect(followedLink.status).toBe(200);
    expect(followedLink.headers['content-type']).toContain('text/html');
    const linkToApi = await rawRequest(server.url, { path: streamPath('cross-site-link'), headers: navigation });
    expect(linkToApi.status).toBe(403);
    expect(await stored('cross-site-link')).toBe(false);
    // Clients that are not browsers send neither header.
    expect((await fetch(`${server.url}/api/v1/conversations`)).status).toBe(200);
  });

  it('knows its own scheme: https before a TLS proxy it cannot see, and exactly the forwarded one through a trusted proxy', async () => {
    const { port } = new URL(server.url);
    expect((await fetch(`${server.url}/api/v1/conversations`, { headers: { origin: `https://127.0.0.1:${port}` } })).status).toBe(200);
    const trusting = await startTestServer({ TRUST_PROXY: 'true' });
    try {
      const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'chat.example.com' };
      expect(
        (await fetch(`${trusting.url}/api/v1/conversations`, { headers: { ...forwarded, origin: 'https://chat.example.com' } })).status,
      ).toBe(200);
      expect(
        (await fetch(`${trusting.url}/api/v1/conversations`, { headers: { ...forwarded, origin: 'http://chat.example.com' } })).status,
      ).toBe(403);
      expect(
        (await fetch(`${trusting.url}/api/v1/conversations`, { headers: { ...forwarded, origin: 'https://evil.example' } })).status,
      ).toBe(403);
    } finally {
      await trusting.close();
    }
  });

  it('checks the origin before the API key', async () => {
    const keyed = await startTestServer({ API_KEYS: 'origin-test-key-1' });
    try {
      const response = await fetch(`${keyed.url}/api/v1/conversations`, { headers: { origin: 'https://evil.example' } });
      expect(response.status).toBe(403);
    } finally {
      await keyed.close();
    }
  });
});

describe('the original chat UI on http://localhost:3000 (ALLOWED_ORIGINS as a JSON list)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ALLOWED_ORIGINS: '["http://localhost:3000","http://localhost:8000"]' });
  });
  afterAll(() => server.close());

  it('passes a real CORS preflight and streams to that origin', async () => {
    const preflight = await fetch(`${server.url}/api/v1/chat/streaming`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:3000',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,last-event-id',
        'sec-fetch-site': 'same-site',
        'sec-fetch-mode': 'cors',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('content-type');
    const stream = await readSse(`${server.url}/api/v1/chat/streaming`, {
      method: 'POST',
      headers: {
        origin: 'http://localhost:3000',
        'content-type': 'application/json',
        'sec-fetch-site': 'same-site',
        'sec-fetch-mode': 'cors',
      },
      body: JSON.stringify({ message: 'hello from the chat UI' }),
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(stream.events.at(-1)!.json.type).toBe('end');
    expect((await fetch(`${server.url}/api/v1/conversations`, { headers: { origin: 'http://localhost:3001' } })).status).toBe(403);
  });
});

describe('Host names of a server bound to loopback (DNS rebinding)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ HOST: '127.0.0.1' });
  });
  afterAll(() => server.close());

  it('serves loopback names on any port', async () => {
    for (const host of ['localhost', 'localhost:8000', '127.0.0.1', '127.0.0.1:9', '[::1]:8000', 'chat.localhost:8000', 'LOCALHOST']) {
      expect((await rawRequest(server.url, { path: '/api/v1/conversations', headers: { host } })).status, host).toBe(200);
    }
  });

  it('refuses any other name with 403 HOST_NOT_ALLOWED, before a turn starts', async () => {
    for (const host of ['evil.example', 'evil.example:8000', '192.168.1.20:8000', 'localhost.evil.example']) {
      const response = await rawRequest(server.url, { path: streamPath('rebinding'), headers: { host } });
      expect(response.status, host).toBe(403);
      expect(JSON.parse(response.text)).toMatchObject({ error_code: 'HOST_NOT_ALLOWED' });
    }
    expect((await rawRequest(server.url, { path: '/api/v1/conversations/rebinding', headers: { host: 'localhost' } })).status).toBe(404);
  });

  it('serves the names ALLOWED_HOSTS lists, or any with *', async () => {
    const named = await startTestServer({ HOST: 'localhost', ALLOWED_HOSTS: 'chat.example.com, *.example.org' });
    const any = await startTestServer({ HOST: '::1', ALLOWED_HOSTS: '*' });
    const open = await startTestServer({ HOST: '0.0.0.0' });
    try {
      expect((await rawRequest(named.url, { path: '/health', headers: { host: 'chat.example.com:443' } })).status).toBe(200);
      expect((await rawRequest(named.url, { path: '/health', headers: { host: 'a.example.org' } })).status).toBe(200);
      expect((await rawRequest(named.url, { path: '/health', headers: { host: 'localhost:8000' } })).status).toBe(200);
      expect((await rawRequest(named.url, { path: '/health', headers: { host: 'evil.example' } })).status).toBe(403);
      expect((await rawRequest(any.url, { path: '/health', headers: { host: 'evil.example' } })).status).toBe(200);
      expect((await rawRequest(open.url, { path: '/health', headers: { host: 'chat.example.net' } })).status).toBe(200);
    } finally {
      await Promise.all([named.close(), any.close(), open.close()]);
    }
  });
});
