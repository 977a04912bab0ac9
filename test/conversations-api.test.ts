import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_RESPONSE_TOKENS: '8' });
});
afterAll(() => server.close());

const send = (message: string, contextId: string) => postJson(`${server.url}/api/v1/chat/wait`, { message, context_id: contextId });
const request = (method: string, path: string, body?: unknown) =>
  fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });

describe('the conversation API', () => {
  it('returns a conversation with its turns and messages, titled from the first message', async () => {
    await send('What is Server-Sent Events?', 'conv-detail');
    const second = await send('And WebSockets?', 'conv-detail');
    const { status, body } = await getJson(`${server.url}/api/v1/conversations/conv-detail`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ context_id: 'conv-detail', title: 'What is Server-Sent Events?', turn_count: 2 });
    expect(body.turns.map((turn: { user_message: string }) => turn.user_message)).toEqual([
      'What is Server-Sent Events?',
      'And WebSockets?',
    ]);
    expect(body.turns[1]).toMatchObject({
      turn_id: second.body.turn_id,
      answer: second.body.message,
      status: 'complete',
      model: 'chatwait-demo',
      token_count: second.body.token_count,
      error_code: null,
    });
    expect(Date.parse(body.turns[1].created_at)).not.toBeNaN();
    expect(body.turns[1].timings.total_ms).toBeGreaterThanOrEqual(0);
  });

  it('lists conversations newest first with cursor pagination', async () => {
    for (const id of ['page-1', 'page-2', 'page-3', 'page-4', 'page-5']) await send('hello', id);
    await readSse(`${server.url}/api/v1/chat/streaming?message=again&context_id=page-2`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${encodeURIComponent(cursor)}` : '?limit=2';
      const page = (await getJson(`${server.url}/api/v1/conversations${query}`)).body;
      expect(page.conversations.length).toBeLessThanOrEqual(2);
      seen.push(...page.conversations.map((conversation: { context_id: string }) => conversation.context_id));
      cursor = page.next_cursor;
    } while (cursor);
    const pages = seen.filter((id) => id.startsWith('page-'));
    expect(pages).toEqual(['page-2', 'page-5', 'page-4', 'page-3', 'page-1']);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('renames a conversation', async () => {
    await send('rename me', 'conv-rename');
    const response = await request('PATCH', '/api/v1/conversations/conv-rename', { title: '  Better title  ' });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ context_id: 'conv-rename', title: 'Better title' });
    expect((await getJson(`${server.url}/api/v1/conversations/conv-rename`)).body.title).toBe('Better title');
  });

  it('deletes a conversation', async () => {
    await send('delete me', 'conv-delete');
    expect((await request('DELETE', '/api/v1/conversations/conv-delete')).status).toBe(204);
    expect((await getJson(`${server.url}/api/v1/conversations/conv-delete`)).status).toBe(404);
    expect((await request('DELETE', '/api/v1/conversations/conv-delete')).status).toBe(404);
  });

  it('answers 404 for an unknown conversation and 422 for bad input', async () => {
    expect((await getJson(`${server.url}/api/v1/conversations/never-was`)).body.error_code).toBe('NOT_FOUND');
    expect((await request('PATCH', '/api/v1/conversations/never-was', { title: 'x' })).status).toBe(404);
    const badId = await getJson(`${server.url}/api/v1/conversations/${encodeURIComponent('a b')}`);
    expect(badId.status).toBe(422);
    expect(badId.body.detail[0].loc).toEqual(['params', 'context_id']);
    const emptyTitle = await request('PATCH', '/api/v1/conversations/conv-detail', { title: '   ' });
    expect(emptyTitle.status).toBe(422);
    const badLimit = await getJson(`${server.url}/api/v1/conversations?limit=1000`);
    expect(badLimit.status).toBe(422);
    expect(badLimit.body.detail[0].loc).toEqual(['query', 'limit']);
  });
});
