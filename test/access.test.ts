import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

describe('API keys', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: 'first-key-123456,second-key-654321' });
  });
  afterAll(() => server.close());

  it('rejects API requests without a key or with a wrong one', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-key-000000' }, { authorization: 'first-key-123456' }] as Record<
      string,
      string
    >[]) {
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

  it('gives each key only its own conversations: another key gets 404, never the content, and sends to a conversation of its own', async () => {
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
    // The same id from another key is another conversation: nothing of a's is read or changed.
    const hijack = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hijack', context_id: 'owned-by-a' }, b);
    expect(hijack.status).toBe(200);
    expect(hijack.body.context_id).toBe('owned-by-a');
    expect(
      (await getJson(`${server.url}/api/v1/conversations/owned-by-a`, b)).body.turns.map(
        (turn: { user_message: string }) => turn.user_message,
      ),
    ).toEqual(['hijack']);
    expect(
      (await getJson(`${server.url}/api/v1/conversations/owned-by-a`, a)).body.turns.map(
        (turn: { user_message: string }) => turn.user_message,
      ),
    ).toEqual(['private to a']);
  });

  it("scopes context ids per key, so probing another key's id reveals nothing", async () => {
    const a = { authorization: 'Bearer first-key-123456' };
    const b = { authorization: 'Bearer second-key-654321' };
    // a holds "probe-taken"; nobody holds "probe-free". To b both answer alike, every way b can ask.
    expect(
      (await postJson(`${server.url}/api/v1/chat/wait`, { message: 'secret plans, 3 tokens', context_id: 'probe-taken' }, a)).status,
    ).toBe(200);
    const probe = async (contextId: string) => {
      const read = await getJson(`${server.url}/api/v1/conversations/${contextId}`, b);
      const rename = await fetch(`${server.url}/api/v1/conversations/${contextId}`, {
        method: 'PATCH',
        headers: { ...b, 'content-type': 'application/json' },
        body: '{"title":"x"}',
      });
      const remove = await fetch(`${server.url}/api/v1/conversations/${contextId}`, { method: 'DELETE', headers: b });
      const resume = await readSse(
        `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('secret plans, 3 tokens')}&context_id=${contextId}&last_token_index=2`,
        { headers: b },
      );
      const send = await readSse(
        `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('anyone here? 3 tokens')}&context_id=${contextId}`,
        { headers: b },
      );
      return {
        read: [read.status, read.body.error_code, read.body.message],
        rename: rename.status,
        remove: remove.status,
        resume: [resume.status, resume.events[0]?.json.resumed, resume.events[0]?.json.context_id],
        send: [send.status, send.events[0]?.json.resumed, send.events.at(-1)?.json.type, send.events.at(-1)?.json.context_id],
      };
    };
    const taken = await probe('probe-taken');
    const free = await probe('probe-free');
    expect({ ...taken, resume: taken.resume.slice(0, 2), send: taken.send.slice(0, 3) }).toEqual({
      ...free,
      resume: free.resume.slice(0, 2),
      send: free.send.slice(0, 3),
    });
    expect(taken.read[0]).toBe(404);
    expect(taken.send).toEqual([200, false, 'end', 'probe-taken']);
    // a's conversation is untouched, and each key lists only its own, under the id it chose.
    expect((await getJson(`${server.url}/api/v1/conversations/probe-taken`, a)).body.turns).toHaveLength(1);
    const listed = (await getJson(`${server.url}/api/v1/conversations?limit=100`, b)).body.conversations.map(
      (conversation: { context_id: string }) => conversation.context_id,
    );
    expect(listed).toEqual(expect.arrayContaining(['probe-taken', 'probe-free']));
  });

  it("keeps a conversation a key made before ids were scoped (stored under the bare id) that key's", async () => {
    const a = { authorization: 'Bearer first-key-123456' };
    const b = { authorization: 'Bearer second-key-654321' };
    const ownerA = createHash('sha256').update('first-key-123456').digest().subarray(0, 16).toString('hex');
    await server.store.startTurn({
      turnId: 'legacy-turn-1',
      contextId: 'legacy-chat',
      userMessage: 'from before',
      model: 'chatwait-demo',
      clientMessageId: undefined,
      owner: ownerA,
    });
    await server.store.finishTurn('legacy-turn-1', {
      status: 'complete',
      answer: 'an old answer',
      usage: undefined,
      timings: { ttft_ms: 1, total_ms: 2 },
      tokenCount: 3,
      errorCode: undefined,
    });
    expect(
      (await getJson(`${server.url}/api/v1/conversations/legacy-chat`, a)).body.turns.map((turn: { answer: string }) => turn.answer),
    ).toEqual(['an old answer']);
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'and now, 3 tokens', context_id: 'legacy-chat' }, a)).status).toBe(
      200,
    );
    expect((await getJson(`${server.url}/api/v1/conversations/legacy-chat`, a)).body.turns).toHaveLength(2);
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'mine, 3 tokens', context_id: 'legacy-chat' }, b)).status).toBe(
      200,
    );
    expect((await getJson(`${server.url}/api/v1/conversations/legacy-chat`, b)).body.turns).toHaveLength(1);
  });

  it('lets two keys generate in conversations of the same id at once', async () => {
    const a = { authorization: 'Bearer first-key-123456' };
    const b = { authorization: 'Bearer second-key-654321' };
    const slowly = await startTestServer({ API_KEYS: 'first-key-123456,second-key-654321', DEMO_TOKENS_PER_SECOND: '50' });
    try {
      const url = (message: string) => `${slowly.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=same-id`;
      const [fromA, fromB] = await Promise.all([
        readSse(url('from a, 20 tokens'), { headers: a }),
        readSse(url('from b, 20 tokens'), { headers: b }),
      ]);
      expect([fromA.status, fromB.status]).toEqual([200, 200]);
      expect([fromA.events.at(-1)!.json.type, fromB.events.at(-1)!.json.type]).toEqual(['end', 'end']);
      const messagesOf = async (headers: Record<string, string>) =>
        (await getJson(`${slowly.url}/api/v1/conversations/same-id`, headers)).body.turns.map(
          (turn: { user_message: string }) => turn.user_message,
        );
      expect(await messagesOf(a)).toEqual(['from a, 20 tokens']);
      expect(await messagesOf(b)).toEqual(['from b, 20 tokens']);
      // Pages of the list follow each other with scoped ids too, long ones included.
      const long = 'x'.repeat(128);
      expect((await postJson(`${slowly.url}/api/v1/chat/wait`, { message: 'long id, 3 tokens', context_id: long }, a)).status).toBe(200);
      const first = (await getJson(`${slowly.url}/api/v1/conversations?limit=1`, a)).body;
      expect(first.conversations[0].context_id).toBe(long);
      const second = (await getJson(`${slowly.url}/api/v1/conversations?limit=1&cursor=${first.next_cursor}`, a)).body;
      expect(second.conversations.map((conversation: { context_id: string }) => conversation.context_id)).toEqual(['same-id']);
    } finally {
      await slowly.close();
    }
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
      headers: {
        origin: 'https://chat.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
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
