import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

describe('per-client rate limits', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      RATE_LIMIT_REQUESTS_PER_MINUTE: '6',
      RATE_LIMIT_BURST: '3',
      MAX_STREAMS_PER_CLIENT: '2',
      DEMO_TOKENS_PER_SECOND: '200',
    });
  });
  afterAll(() => server.close());

  it('allows the burst, then answers 429 RATE_LIMITED with Retry-After and RateLimit headers', async () => {
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof postJson>> | undefined;
    for (let index = 0; index < 5; index++) {
      const response = await postJson(
        `${server.url}/api/v1/chat/wait`,
        { message: `limited ${index}, 3 tokens` },
        { 'x-forwarded-for': '203.0.113.9' },
      );
      statuses.push(response.status);
      if (response.status === 429) refused ??= response;
    }
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    expect(refused!.body.error_code).toBe('RATE_LIMITED');
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused!.headers.get('ratelimit-limit')).toBe('6');
    expect(refused!.headers.get('ratelimit-remaining')).toBe('0');
    expect(refused!.headers.get('ratelimit-policy')).toBe('6;w=60;burst=3');
  });

  it('never limits health, the page settings, metrics or the page', async () => {
    for (let index = 0; index < 40; index++) {
      for (const path of ['/health', '/api/v1/health/ready', '/api/v1/config', '/metrics'])
        expect((await fetch(`${server.url}${path}`)).status).toBe(200);
    }
  });

  it('does not count a resume as a new request, and caps open streams per client', async () => {
    const limited = await startTestServer({
      RATE_LIMIT_REQUESTS_PER_MINUTE: '60',
      RATE_LIMIT_BURST: '1',
      MAX_STREAMS_PER_CLIENT: '2',
      DEMO_TOKENS_PER_SECOND: '100',
    });
    try {
      const url = `${limited.url}/api/v1/chat/streaming?message=${encodeURIComponent('resume me, 100 tokens')}&context_id=limits-resume`;
      const first = await readSse(url, { until: (_event, events) => events.length === 5 });
      for (let resume = 0; resume < 3; resume++) {
        const again = await readSse(url, {
          headers: { 'last-event-id': first.events.at(-1)!.id! },
          until: (_event, events) => events.length === 2,
        });
        expect(again.status).toBe(200);
      }
      const legacy = await readSse(`${url}&last_token_index=3`, { until: (_event, events) => events.length === 2 });
      expect(legacy.status).toBe(200);
      // A new message is over the burst of 1.
      const other = await readSse(`${limited.url}/api/v1/chat/streaming?message=new&context_id=limits-other`);
      expect(other.status).toBe(429);

      const controllers = [new AbortController(), new AbortController()];
      const open = await Promise.all(
        controllers.map((controller) => fetch(url, { headers: { 'last-event-id': first.events.at(-1)!.id! }, signal: controller.signal })),
      );
      expect(open.map((response) => response.status)).toEqual([200, 200]);
      const third = await readSse(url, { headers: { 'last-event-id': first.events.at(-1)!.id! } });
      expect(third.status).toBe(429);
      expect(third.error.message).toMatch(/at most 2/);
      for (const controller of controllers) controller.abort();
      await expect
        .poll(async () => (await readSse(url, { headers: { 'last-event-id': first.events.at(-1)!.id! }, until: () => true })).status)
        .toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('never limits resumes, however many, past the API limit, while new messages still get 429', async () => {
    // 1 message a minute: other API calls get 10 a minute, with bursts of 10.
    const limited = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '1', RATE_LIMIT_BURST: '1', DEMO_TOKENS_PER_SECOND: '100' });
    try {
      const message = 'resume me often, 200 tokens';
      const url = `${limited.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=limits-many-resumes`;
      const first = await readSse(url, { until: (_event, events) => events.length === 5 });
      expect(first.status).toBe(200);
      const lastEventId = first.events.at(-1)!.id!;
      const statuses: number[] = [];
      for (let resume = 0; resume < 12; resume++) {
        statuses.push(
          (await readSse(url, { headers: { 'last-event-id': lastEventId }, until: (_event, events) => events.length === 2 })).status,
        );
        statuses.push((await readSse(`${url}&last_token_index=3`, { until: (_event, events) => events.length === 2 })).status);
        const posted = await readSse(`${limited.url}/api/v1/chat/streaming`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'last-event-id': lastEventId },
          body: JSON.stringify({ message, context_id: 'limits-many-resumes' }),
          until: (_event, events) => events.length === 2,
        });
        statuses.push(posted.status);
      }
      expect(statuses).toEqual(statuses.map(() => 200));
      const other = await readSse(`${limited.url}/api/v1/chat/streaming?message=new&context_id=limits-many-other`);
      expect(other.status).toBe(429);
      expect(other.error.error_code).toBe('RATE_LIMITED');
      expect((await readSse(url, { headers: { 'last-event-id': lastEventId }, until: () => true })).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('keys clients by address only through a trusted proxy', async () => {
    const trusting = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '60', RATE_LIMIT_BURST: '1', TRUST_PROXY: 'true' });
    const distrusting = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '60', RATE_LIMIT_BURST: '1' });
    try {
      const send = (server: TestServer, address: string) =>
        postJson(`${server.url}/api/v1/chat/wait`, { message: 'who am I, 3 tokens' }, { 'x-forwarded-for': address });
      expect((await send(trusting, '198.51.100.1')).status).toBe(200);
      expect((await send(trusting, '198.51.100.2')).status).toBe(200);
      expect((await send(distrusting, '198.51.100.1')).status).toBe(200);
      // Without TRUST_PROXY the header is ignored: both come from 127.0.0.1.
      expect((await send(distrusting, '198.51.100.2')).status).toBe(429);
    } finally {
      await trusting.close();
      await distrusting.close();
    }
  });
  it('with one trusted hop, keys a client by the address its proxy saw, not by a first X-Forwarded-For entry it forged', async () => {
    const server = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '60', RATE_LIMIT_BURST: '1', TRUST_PROXY: '1' });
    try {
      const send = (forwardedFor: string) =>
        postJson(`${server.url}/api/v1/chat/wait`, { message: 'who am I, 3 tokens' }, { 'x-forwarded-for': forwardedFor });
      expect((await send('203.0.113.7, 198.51.100.1')).status).toBe(200);
      // The same client (as its proxy appended it) with another forged first entry: still one bucket.
      expect((await send('203.0.113.8, 198.51.100.1')).status).toBe(429);
      expect((await send('203.0.113.8, 198.51.100.2')).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('GET /metrics', () => {
  it('exposes request, turn, token, stream, resume, cancel, limit, upstream and store metrics', async () => {
    const server = await startTestServer({ RATE_LIMIT_REQUESTS_PER_MINUTE: '60', RATE_LIMIT_BURST: '2', DEMO_TOKENS_PER_SECOND: '0' });
    try {
      const whole = await readSse(`${server.url}/api/v1/chat/streaming?message=metrics%2C%2010%20tokens&context_id=metrics`);
      await readSse(`${server.url}/api/v1/chat/streaming?message=x&context_id=metrics`, {
        headers: { 'last-event-id': `${whole.events[0]!.json.turn_id}/start` },
      });
      await postJson(`${server.url}/api/v1/chat/wait`, { message: 'a' });
      await postJson(`${server.url}/api/v1/chat/wait`, { message: 'b' });
      await getJson(`${server.url}/api/v1/conversations`);
      // A stream is counted when its connection has closed on the server side too.
      await expect.poll(async () => (await (await fetch(`${server.url}/metrics`)).text()).includes('chatwait_open_streams 0')).toBe(true);
      const response = await fetch(`${server.url}/metrics`);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await response.text();
      for (const name of [
        'chatwait_http_requests_total{route="/api/v1/chat/wait",method="POST",status="200"}',
        'chatwait_http_requests_total{route="/api/v1/chat/streaming",method="GET",status="200"} 2',
        'chatwait_http_request_duration_seconds_bucket',
        'chatwait_time_to_first_token_seconds_count 2',
        'chatwait_inter_token_delay_seconds_bucket',
        'chatwait_tokens_total',
        'chatwait_turns_total{status="complete"} 2',
        'chatwait_open_streams 0',
        'chatwait_resumes_total{method="last_event_id"} 1',
        'chatwait_rate_limited_total{kind="turns"} 1',
        'chatwait_store_operation_duration_seconds_count{operation="startTurn"}',
        'chatwait_process_resident_memory_bytes',
      ]) {
        expect(text, name).toContain(name);
      }
    } finally {
      await server.close();
    }
  });
});
