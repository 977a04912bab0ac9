import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../src/client/api-error.js';
import { followTurn, type FollowEvent, type FollowTurnOptions } from '../src/client/follow-turn.js';
import { startInEventCuttingProxy, type InEventCut } from './support/cutting-proxy.js';
import { startTestServer, type TestServer } from './support/test-server.js';

// The shared follower (src/client/follow-turn.ts), used by the page and the terminal client, against
// the real server through a cutting proxy and against scripted servers for the failure rules.

/** A stand-in server answering the n-th request (0-based) with `script[n]` (the last one repeats). */
async function startScriptedServer(script: ((response: http.ServerResponse, request: http.IncomingMessage) => void)[]) {
  const requests: { lastEventId: string | undefined }[] = [];
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const step = script[Math.min(requests.length, script.length - 1)]!;
      requests.push({ lastEventId: request.headers['last-event-id'] as string | undefined });
      step(response, request);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/chat/streaming`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((done) => server.close(done));
    },
  };
}

const TURN = 'scripted';
const start = { type: 'start', context_id: 'c', turn_id: TURN, resumed: false, model: 'm' };
const token = (index: number) => ({ type: 'token', token: `t${index} `, token_index: index, context_id: 'c' });
const end = (count: number) => ({
  type: 'end',
  context_id: 'c',
  turn_id: TURN,
  final_output: '',
  token_count: count,
  finish_reason: 'stop',
  model: 'm',
});
const block = (id: string, data: unknown) => `data: ${JSON.stringify(data)}\nid: ${id}\n\n`;

/** A stream of `start` and `events` at positions from `from` (then left open unless `close`). */
const streamOf =
  (events: unknown[], options: { from?: number; close?: boolean } = {}) =>
  (response: http.ServerResponse) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(block(`${TURN}/start`, start));
    events.forEach((event, index) => response.write(block(`${TURN}/${(options.from ?? 0) + index}`, event)));
    if (options.close ?? true) response.end();
  };
const jsonError =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  (response: http.ServerResponse) =>
    response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

async function collect(url: string, options: Partial<FollowTurnOptions> = {}): Promise<FollowEvent[]> {
  const events: FollowEvent[] = [];
  for await (const event of followTurn({ message: 'hi', contextId: 'c', clientMessageId: 'k' }, { url, ...options })) events.push(event);
  return events;
}
const ofType = <T extends FollowEvent['type']>(events: FollowEvent[], type: T) =>
  events.filter((event): event is Extract<FollowEvent, { type: T }> => event.type === type);

describe('following a turn through the real server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '2000' });
  });
  afterAll(() => server.close());

  it('yields every token exactly once, in order, then the end, over connections cut inside events', async () => {
    const cuts = 12;
    const kinds: InEventCut[] = ['after-first-line', 'inside-second-line', 'inside-first-line'];
    const proxy = await startInEventCuttingProxy(server.url, {
      cutFor: (stream) => (stream < cuts ? { afterEvents: 1 + ((stream * 7) % 11), at: kinds[stream % kinds.length]! } : undefined),
      retryMs: 1,
    });
    try {
      const events = await collect(`${proxy.url}/api/v1/chat/streaming`, { maxAttempts: 3 });
      expect(proxy.cuts()).toBe(cuts);
      expect(ofType(events, 'reconnecting')).toHaveLength(cuts);
      expect(ofType(events, 'start')).toHaveLength(1);
      const tokens = ofType(events, 'token');
      const last = events.at(-1)!;
      expect(last.type).toBe('end');
      if (last.type !== 'end') return;
      expect(tokens.map((event) => event.token_index)).toEqual(tokens.map((_, index) => index));
      expect(tokens.map((event) => event.token).join('')).toBe(last.final_output);
      expect(tokens.length).toBe(last.token_count);
    } finally {
      await proxy.close();
    }
  });
});

describe('following a turn: the retry rules', () => {
  const servers: { close(): Promise<unknown> }[] = [];
  const scripted = async (script: Parameters<typeof startScriptedServer>[0]) => {
    const server = await startScriptedServer(script);
    servers.push(server);
    return server;
  };
  afterAll(async () => {
    for (const server of servers) await server.close();
  });

  it('resumes after the last event it got and drops what it already had', async () => {
    const server = await scripted([
      (response) => {
        streamOf([token(0), token(1)], { close: false })(response);
        setTimeout(() => response.destroy(), 20);
      },
      // The resumed stream repeats position 1 (and token 1): neither comes out twice.
      streamOf([token(1), token(2), end(3)], { from: 1 }),
    ]);
    const events = await collect(server.url);
    expect(server.requests.map((request) => request.lastEventId)).toEqual([undefined, `${TURN}/1`]);
    expect(ofType(events, 'token').map((event) => event.token_index)).toEqual([0, 1, 2]);
    expect(events.map((event) => event.type)).toEqual([
      'connected',
      'start',
      'token',
      'token',
      'reconnecting',
      'connected',
      'token',
      'end',
    ]);
  });

  it('waits as long as Retry-After says when the server says retryable', async () => {
    const server = await scripted([
      jsonError(503, { error_code: 'SERVER_BUSY', message: 'busy', retryable: true }, { 'retry-after': '1' }),
      streamOf([token(0), end(1)]),
    ]);
    const events = await collect(server.url);
    const [reconnect] = ofType(events, 'reconnecting');
    expect(reconnect!.delayMs).toBe(1000);
    expect(reconnect!.error).toMatchObject({ status: 503, code: 'SERVER_BUSY', retryable: true, retryAfterSeconds: 1 });
    expect(events.at(-1)!.type).toBe('end');
  });

  it("takes the body's retryable over the status, both ways", async () => {
    const refused = await scripted([jsonError(503, { error_code: 'SERVER_BUSY', message: 'not this time', retryable: false })]);
    await expect(collect(refused.url)).rejects.toMatchObject({ status: 503, code: 'SERVER_BUSY', retryable: false });
    expect(refused.requests).toHaveLength(1);

    const fine = await scripted([
      // A status not retried by itself (busy and 500 are not sent again automatically), which the body says is worth it.
      jsonError(404, { error_code: 'NOT_FOUND', message: 'not there yet, try again', retryable: true }),
      streamOf([end(0)]),
    ]);
    expect((await collect(fine.url)).at(-1)!.type).toBe('end');
    expect(fine.requests).toHaveLength(2);
  });

  it('does not send a busy conversation or a 500 again by itself, though both are worth a try later', async () => {
    for (const [status, code] of [
      [409, 'CONVERSATION_BUSY'],
      [500, 'INTERNAL_ERROR'],
    ] as const) {
      const once = await scripted([jsonError(status, { error_code: code, message: 'later', retryable: true }), streamOf([end(0)])]);
      await expect(collect(once.url)).rejects.toMatchObject({ status, code, retryable: true });
      expect(once.requests).toHaveLength(1);
    }
  });

  it('falls back to the status when the body does not say: a gateway error is retried, a bad request is not', async () => {
    const gateway = await scripted([
      (response) => response.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>'),
      streamOf([end(0)]),
    ]);
    expect((await collect(gateway.url)).at(-1)!.type).toBe('end');
    expect(gateway.requests).toHaveLength(2);

    const bad = await scripted([jsonError(422, { error_code: 'VALIDATION_ERROR', message: 'too long' })]);
    const error = await collect(bad.url).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 422, code: 'VALIDATION_ERROR', message: 'too long', retryable: false });
    expect(bad.requests).toHaveLength(1);
  });

  it('ends with an error event, carrying its retryable, and does not reconnect after it', async () => {
    const error = {
      type: 'error',
      context_id: 'c',
      turn_id: TURN,
      error_code: 'UPSTREAM_ERROR',
      message: 'the model failed',
      retryable: true,
    };
    const server = await scripted([streamOf([token(0), error])]);
    const events = await collect(server.url);
    expect(events.at(-1)).toEqual({ ...error });
    expect(server.requests).toHaveLength(1);
  });

  it('counts a connection that goes silent past the idle timeout as dropped', async () => {
    const server = await scripted([streamOf([token(0)], { close: false }), streamOf([token(1), end(2)], { from: 1 })]);
    const events = await collect(server.url, { idleTimeoutMs: 300 });
    expect(ofType(events, 'reconnecting').map((event) => event.error.code)).toEqual(['IDLE_TIMEOUT']);
    expect(ofType(events, 'token').map((event) => event.token_index)).toEqual([0, 1]);
    expect(server.requests.map((request) => request.lastEventId)).toEqual([undefined, `${TURN}/0`]);
  });

  it('fails on a token_index gap instead of yielding a broken answer', async () => {
    const server = await scripted([streamOf([token(0), token(2), end(3)])]);
    await expect(collect(server.url)).rejects.toMatchObject({
      code: 'STREAM_GAP',
      message: 'The stream skipped tokens (expected token_index 1, got 2).',
    });
    expect(server.requests).toHaveLength(1);
  });

  it('gives up after maxAttempts failures in a row', async () => {
    const server = await scripted([
      jsonError(429, { error_code: 'RATE_LIMITED', message: 'slow down', retryable: true }, { 'retry-after': '0' }),
    ]);
    await expect(collect(server.url, { maxAttempts: 3 })).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    expect(server.requests).toHaveLength(3);
  });

  it('stops with the signal, mid-stream, with its reason', async () => {
    const server = await scripted([streamOf([token(0)], { close: false })]);
    const controller = new AbortController();
    const reason = new Error('stopped by the reader');
    const events: FollowEvent[] = [];
    const following = (async () => {
      for await (const event of followTurn({ message: 'hi', contextId: 'c' }, { url: server.url, signal: controller.signal })) {
        events.push(event);
        if (event.type === 'token') controller.abort(reason);
      }
    })();
    await expect(following).rejects.toBe(reason);
    expect(events.map((event) => event.type)).toEqual(['connected', 'start', 'token']);
  });
});
