import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

let server: TestServer;
const directory = mkdtempSync(join(tmpdir(), 'chatwait-stored-text-'));
beforeAll(async () => {
  // The real SQLite file: what it cannot hold faithfully is the point.
  server = await startTestServer({ DATABASE_URL: `sqlite:${join(directory, 'chatwait.db')}` });
});
afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

const patchTitle = (contextId: string, body: string) =>
  fetch(`${server.url}/api/v1/conversations/${contextId}`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body });

describe('text that cannot be stored faithfully', () => {
  it('refuses a lone UTF-16 surrogate in a message with 422 naming the field, on every route that takes one', async () => {
    for (const path of ['/api/v1/chat/wait', '/api/v1/chat/streaming']) {
      for (const escape of ['\\ud800', '\\udfff', 'a\\udc00b', '\\ude00\\ud83d']) {
        const response = await postJson(`${server.url}${path}`, `{"message":"Hello ${escape} there","context_id":"surrogates"}`);
        expect(response.status, `${path} ${escape}`).toBe(422);
        expect(response.body.error_code).toBe('VALIDATION_ERROR');
        expect(response.body.detail).toEqual([
          expect.objectContaining({ loc: ['body', 'message'], msg: expect.stringContaining('lone UTF-16 surrogate') }),
        ]);
      }
    }
    const history = await postJson(`${server.url}/api/v1/chat/wait`, '{"message":"Hi","history":[{"role":"user","content":"x\\ud800"}]}');
    expect(history.status).toBe(422);
    expect(history.body.detail[0].loc).toEqual(['body', 'history', 0, 'content']);
    expect((await getJson(`${server.url}/api/v1/conversations/surrogates`)).status).toBe(404);
  });

  it('stores paired surrogates (emoji) byte for byte, and keeps a query that is not UTF-8 (an encoded surrogate) as written', async () => {
    const emoji = await postJson(
      `${server.url}/api/v1/chat/wait`,
      '{"message":"Smile \\ud83d\\ude00 please, 3 tokens","context_id":"emoji"}',
    );
    expect(emoji.status).toBe(200);
    expect((await getJson(`${server.url}/api/v1/conversations/emoji`)).body.turns[0].user_message).toBe('Smile 😀 please, 3 tokens');
    const query = await readSse(`${server.url}/api/v1/chat/streaming?message=odd%ED%A0%80bytes&context_id=invalid-utf8`);
    expect(query.status).toBe(200);
    // The query parser leaves escapes that are not UTF-8 undecoded: the text stored is the text sent, never a lone surrogate.
    expect((await getJson(`${server.url}/api/v1/conversations/invalid-utf8`)).body.turns[0].user_message).toBe('odd%ED%A0%80bytes');
  });
});

describe('conversation titles', () => {
  it('refuse control characters and lone surrogates with 422, and keep any other text', async () => {
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'title me', context_id: 'titles' })).status).toBe(200);
    for (const title of [
      'two\nlines',
      'tab\there',
      'bell\u0007',
      'escape \u001b[31mred',
      'del\u007f',
      'c1\u0085',
      'nul\u0000',
      'line\u2028separator',
      'para\u2029graph',
      'evil\u202egpj.exe',
      'lre\u202ax',
      'isolate\u2067x\u2069',
    ]) {
      const response = await patchTitle('titles', JSON.stringify({ title }));
      expect(response.status, JSON.stringify(title)).toBe(422);
      const body = await response.json();
      expect(body.error_code).toBe('VALIDATION_ERROR');
      expect(body.detail[0]).toMatchObject({ loc: ['body', 'title'], msg: expect.stringContaining('control characters') });
    }
    expect((await patchTitle('titles', '{"title":"lone \\ud800"}')).status).toBe(422);
    const renamed = await patchTitle('titles', JSON.stringify({ title: '  Ünïcödé 😀 title — fine  ' }));
    expect(renamed.status).toBe(200);
    expect((await renamed.json()).title).toBe('Ünïcödé 😀 title — fine');
    expect((await getJson(`${server.url}/api/v1/conversations/titles`)).body.title).toBe('Ünïcödé 😀 title — fine');
  });

  it('made from a first message hold no control characters either', async () => {
    expect(
      (
        await postJson(`${server.url}/api/v1/chat/wait`, {
          message: 'red\u001b[31m alert\u0007\u0000 now\u0085!',
          context_id: 'auto-title',
        })
      ).status,
    ).toBe(200);
    expect((await getJson(`${server.url}/api/v1/conversations/auto-title`)).body.title).toBe('red [31m alert now !');
    const spoofing = 'invoice\u202egpj.exe\u2028next\u2029line \u2066isolated\u2069';
    expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: spoofing, context_id: 'auto-title-bidi' })).status).toBe(200);
    expect((await getJson(`${server.url}/api/v1/conversations/auto-title-bidi`)).body.title).toBe('invoicegpj.exe next line isolated');
  });
});
