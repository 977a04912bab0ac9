import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/local-postgres.mjs';
import { loadConfig } from '../src/config.js';
import { chatWaitServices, readCompose, serviceEnvironment } from './support/deploy-files.js';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { startInstancesBehindNginx, type InstancesBehindNginx } from './support/instances.js';
import { hasNginx, NGINX_CONFIG, startNginx } from './support/nginx.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { parseSse, tokensOf, type SseEvent } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

/** The instances' settings that matter here, as compose.yaml deploys them. */
const compose = readCompose();
const deployed = serviceEnvironment(compose.services[chatWaitServices(compose)[0]!]!, { POSTGRES_PASSWORD: 'unused' });

const KEY = 'deploy-test-key-1';

/** A GET through nginx from a chosen loopback address (Linux routes all of 127.0.0.0/8 to this machine). */
function getFrom(localAddress: string, url: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; remaining: number }>((resolve, reject) => {
    const request = http.get(url, { localAddress, headers, agent: false }, (response) => {
      response.resume();
      response.once('end', () => resolve({ status: response.statusCode!, remaining: Number(response.headers['ratelimit-remaining']) }));
    });
    request.once('error', reject);
  });
}

describe.skipIf(!hasNginx() || !hasPostgres())("two instances on one PostgreSQL behind nginx with the repository's configuration", () => {
  let fake: FakeOpenAIServer;
  let cluster: InstancesBehindNginx;
  /** Instances with API keys: they refuse requests from the headers alone. */
  let keyed: InstancesBehindNginx;
  const run = randomBytes(4).toString('hex');
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    const starting = startInstancesBehindNginx(2, { TRUST_PROXY: deployed.TRUST_PROXY!, API_KEYS: KEY });
    cluster = await startInstancesBehindNginx(2, {
      LLM_PROVIDER: 'openai',
      OPENAI_BASE_URL: fake.baseUrl,
      DATABASE_URL: await createTestDatabase('deploy'),
      TRUST_PROXY: deployed.TRUST_PROXY!,
      // The general API limit is what shows which client an instance saw: 500 requests of burst, refilled slowly.
      RATE_LIMIT_REQUESTS_PER_MINUTE: '1',
      RATE_LIMIT_BURST: '50',
      MAX_STREAMS_PER_CLIENT: '0',
      MAX_GENERATING_TURNS_PER_CLIENT: '0',
    });
    keyed = await starting;
  });
  afterAll(async () => {
    await Promise.all([cluster?.stop(), keyed?.stop()]);
    await fake?.close();
  });

  it('spreads requests round robin over both instances, which serve the same conversations', async () => {
    const answer = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'hello through nginx' });
    expect(answer.status).toBe(200);
    const served: number[] = [];
    for (let index = 0; index < 6; index++) {
      const requestId = `rr-${run}-${index}`;
      const conversation = await getJson(`${cluster.url}/api/v1/conversations/${answer.body.context_id}`, { 'x-request-id': requestId });
      expect(conversation.status).toBe(200);
      expect(conversation.headers.get('x-request-id')).toBe(requestId);
      expect(conversation.body.turns.map((turn: { answer: string }) => turn.answer)).toEqual([answer.body.message]);
      served.push(await cluster.servedBy(requestId));
    }
    // No stickiness: round robin gives each instance half of them, whichever one the rotation starts at.
    expect(served.filter((index) => index === 0)).toHaveLength(3);
    expect(served.filter((index) => index === 1)).toHaveLength(3);
  });

  it('sends every request to the other instance while one cannot be reached', async () => {
    // The repository's configuration in front of one live instance and one address where nothing listens.
    const nginx = await startNginx([new URL(cluster.urls[0]!).host, `127.0.0.1:${await freePort()}`]);
    try {
      for (let index = 0; index < 4; index++) {
        const requestId = `down-${run}-${index}`;
        const response = await fetch(`${nginx.url}/api/v1/conversations`, { headers: { 'x-request-id': requestId } });
        expect(response.status).toBe(200);
        expect(await cluster.servedBy(requestId)).toBe(0);
      }
      expect(nginx.errorLog()).toMatch(/connect\(\) failed/);
    } finally {
      await nginx.stop();
    }
  });

  it('never sends a stream-starting GET to the other instance after the first one failed before answering', async () => {
    // An "instance" that reads the request and resets the connection: it may have started the turn.
    const received: string[] = [];
    const resetter = net.createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        received.push(chunk.toString().split('\r\n')[0]!);
        socket.resetAndDestroy();
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => resetter.listen(0, '127.0.0.1', resolve));
    const nginx = await startNginx([`127.0.0.1:${(resetter.address() as net.AddressInfo).port}`, new URL(cluster.urls[0]!).host]);
    try {
      const path = `/api/v1/chat/streaming?message=${encodeURIComponent('start once')}`;
      const statuses: number[] = [];
      for (let index = 0; index < 2; index++) {
        const requestId = `once-${run}-${index}`;
        const response = await fetch(`${nginx.url}${path}`, { headers: { 'x-request-id': requestId } });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
      // One of the two reached the resetting instance and got nginx's 502, never a second try on the live one.
      expect(received).toEqual([`GET ${path} HTTP/1.1`]);
      expect(statuses.sort()).toEqual([200, 502]);
    } finally {
      await nginx.stop();
      await new Promise((resolve) => resetter.close(resolve));
    }
  });

  it("answers large requests refused before their body is read with ChatWait's answer, never a 502", async () => {
    // Refused from the headers alone (no key, wrong type, another site) while nginx still sends the body.
    {
      const body = JSON.stringify({ message: 'x'.repeat(900_000) });
      const withoutKey = { 'content-type': 'application/json' };
      const asText = { 'content-type': 'text/plain', authorization: `Bearer ${KEY}` };
      const fromElsewhere = { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, origin: 'http://evil.example' };
      const statuses: number[] = [];
      for (let index = 0; index < 4; index++) {
        for (const headers of [withoutKey, asText, fromElsewhere]) {
          statuses.push((await fetch(`${keyed.url}/api/v1/chat/wait`, { method: 'POST', headers, body })).status);
        }
      }
      expect(statuses).toEqual(Array.from({ length: 4 }, () => [401, 415, 403]).flat());
      // Neither instance was taken out of the rotation.
      expect(keyed.nginx.errorLog()).not.toMatch(/temporarily disabled|Broken pipe/);
    }
  });

  it('puts a restarted instance back in the rotation at its address', async () => {
    const before = cluster.instances[1]!;
    await cluster.restart(1);
    expect(cluster.instances[1]).not.toBe(before);
    const served: number[] = [];
    for (let index = 0; index < 6; index++) {
      const requestId = `restart-${run}-${index}`;
      expect((await fetch(`${cluster.url}/api/v1/health/live`, { headers: { 'x-request-id': requestId } })).status).toBe(200);
      served.push(await cluster.servedBy(requestId));
    }
    // Both serve (nginx may first have tried the old process's kept-alive connection and set it aside).
    expect(new Set(served)).toEqual(new Set([0, 1]));
  });

  it('streams an answer through unbuffered and uncompressed: tokens arrive while the model is still generating', async () => {
    // The model sends two tokens and then nothing more: what reaches the client came through as it was written.
    fake.enqueue({ kind: 'hang', tokens: ['Hel', 'lo'] });
    const controller = new AbortController();
    const response = await fetch(`${cluster.url}/api/v1/chat/streaming?message=${encodeURIComponent('stream me')}`, {
      headers: { 'accept-encoding': 'gzip, deflate, br' },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(response.headers.get('content-encoding')).toBeNull();
    // nginx does compress, only not streams: JSON comes gzipped to the same client.
    const list = await fetch(`${cluster.url}/api/v1/conversations`, { headers: { 'accept-encoding': 'gzip' } });
    expect(list.headers.get('content-encoding')).toBe('gzip');
    expect((await list.json()).conversations.length).toBeGreaterThan(0);
    const events: SseEvent[] = [];
    try {
      for await (const item of parseSse(response.body!)) {
        if (item.kind === 'event') events.push(item.event);
        if (tokensOf(events).length === 2) break;
      }
      expect(events.map((event) => event.json.type)).toEqual(['start', 'token', 'token']);
      expect(tokensOf(events)).toEqual(['Hel', 'lo']);
      // The turn is still generating (either instance reads it from the shared store), so nginx held nothing back.
      const conversation = await getJson(`${cluster.url}/api/v1/conversations/${events[0]!.json.context_id}`);
      expect(conversation.body.turns.at(-1).status).toBe('streaming');
    } finally {
      controller.abort();
    }

    // A whole answer: every token once, in order, joined into the final output.
    const whole = await fetch(`${cluster.url}/api/v1/chat/streaming?message=${encodeURIComponent('and the whole one')}`);
    const all: SseEvent[] = [];
    for await (const item of parseSse(whole.body!)) if (item.kind === 'event') all.push(item.event);
    expect(tokensOf(all)).toEqual(fake.fallback.kind === 'stream' ? fake.fallback.tokens : []);
    expect(all.at(-1)!.json).toMatchObject({ type: 'end', final_output: tokensOf(all).join(''), finish_reason: 'stop' });
    expect(all.filter((event) => event.json.type !== 'start').map((event) => event.id)).toEqual(
      all.slice(1).map((_, position) => `${all[0]!.json.turn_id}/${position}`),
    );
  });

  it("gives ChatWait the client's own address and drops a forged X-Forwarded-For", async () => {
    const url = `${cluster.url}/api/v1/conversations`;
    // Each instance counts each client in its own bucket; a first request from a client leaves 499 of 500.
    const first = [await getFrom('127.0.0.2', url, { 'x-forwarded-for': '127.0.0.3' }), await getFrom('127.0.0.2', url)];
    expect(first).toEqual([
      { status: 200, remaining: 499 },
      { status: 200, remaining: 499 },
    ]);
    // 127.0.0.3 is a new client on both instances: the forged header charged nothing to it, and 127.0.0.2's requests are not its own.
    expect([await getFrom('127.0.0.3', url), await getFrom('127.0.0.3', url)]).toEqual([
      { status: 200, remaining: 499 },
      { status: 200, remaining: 499 },
    ]);
  });

  it("keeps the Host and scheme the browser used, so the page's own origin is accepted and others are not", async () => {
    const own = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'from the page' }, { origin: cluster.url });
    expect(own.status).toBe(200);
    const other = await postJson(`${cluster.url}/api/v1/chat/wait`, { message: 'from elsewhere' }, { origin: 'http://evil.example' });
    expect(other.status).toBe(403);
    expect(other.body.error_code).toBe('ORIGIN_NOT_ALLOWED');
  });

  it("refuses a body over ChatWait's limit itself, with ChatWait's own JSON error, and passes one at the limit", async () => {
    const limit = loadConfig({}, undefined).MAX_BODY_BYTES;
    const [, size, unit] = /client_max_body_size\s+(\d+)([kKmMgG]?);/.exec(readFileSync(NGINX_CONFIG, 'utf8'))!;
    expect(Number(size) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit!.toLowerCase() as '' | 'k' | 'm' | 'g']).toBe(limit);
    /** A JSON body of exactly `bytes` bytes. */
    const bodyOf = (bytes: number) => JSON.stringify({ message: 'x'.repeat(bytes - '{"message":""}'.length) });
    const direct = await postJson(`${cluster.urls[0]}/api/v1/chat/wait`, bodyOf(limit + 1), { 'x-request-id': `direct-${run}` });
    const proxied = await postJson(`${cluster.url}/api/v1/chat/wait`, bodyOf(limit + 1), { 'x-request-id': `proxied-${run}` });
    expect(direct.status).toBe(413);
    expect(proxied.status).toBe(413);
    expect(proxied.headers.get('content-type')).toBe(direct.headers.get('content-type'));
    expect(proxied.headers.get('x-request-id')).toBe(`proxied-${run}`);
    expect(proxied.body).toEqual({ ...direct.body, request_id: `proxied-${run}` });
    // A request id ChatWait would not take is not echoed: nginx uses one of its own.
    const unsafe = await postJson(`${cluster.url}/api/v1/chat/wait`, bodyOf(limit + 1), { 'x-request-id': 'a"b' });
    expect(unsafe.body.request_id).toMatch(/^[0-9a-f]{32}$/);
    // At the limit the body reaches ChatWait, which answers as it does without nginx.
    const atLimit = await postJson(`${cluster.url}/api/v1/chat/wait`, bodyOf(limit));
    const atLimitDirect = await postJson(`${cluster.urls[0]}/api/v1/chat/wait`, bodyOf(limit));
    expect(atLimit.status).not.toBe(413);
    expect([atLimit.status, atLimit.body.error_code]).toEqual([atLimitDirect.status, atLimitDirect.body.error_code]);
  });
});
