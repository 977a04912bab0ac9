import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/test-server.js';

// The OpenAI-compatible stream read byte by byte: its id: lines, a resume with Last-Event-ID, a cancel.

const BODY = {
  model: 'chatwait-demo',
  messages: [{ role: 'user', content: 'Tell me something long' }],
  stream: true,
  stream_options: { include_usage: true },
};

/** A streamed call's response, its text read as it comes. */
async function post(server: TestServer, headers: Record<string, string> = {}, body: unknown = BODY) {
  const controller = new AbortController();
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  return { response, controller };
}

/** The event blocks of a stream's text (each `data:` … blank line), without comments, `retry:` and an unfinished last block. */
function blocksOf(text: string): string[] {
  const events = text.replace(/^(:.*|retry: \d+)\n/gm, '');
  const parts = events.split('\n\n');
  parts.pop();
  return parts.map((part) => `${part}\n\n`);
}

/** Reads a response to its end, or until `enough` says so (then aborts it): the event blocks read whole. */
async function readBlocks(response: Response, controller?: AbortController, enough?: (blocks: string[]) => boolean): Promise<string[]> {
  const decoder = new TextDecoder();
  let text = '';
  try {
    for await (const bytes of response.body!) {
      text += decoder.decode(bytes, { stream: true });
      if (enough?.(blocksOf(text))) {
        controller!.abort();
        break;
      }
    }
  } catch (error) {
    if (!controller?.signal.aborted) throw error;
  }
  return blocksOf(text);
}

function idOf(block: string): string | undefined {
  return /^id: (.*)$/m.exec(block)?.[1];
}

function dataOf(block: string): string {
  return /^data: (.*)$/m.exec(block)![1]!;
}

describe('resuming an OpenAI-compatible stream', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '100', DEMO_RESPONSE_TOKENS: '80' });
  });
  afterAll(() => server.close());

  it('resumes with Last-Event-ID byte for byte where a cut connection stopped', async () => {
    const first = await post(server);
    const turnId = first.response.headers.get('x-chatwait-turn-id')!;
    const contextId = first.response.headers.get('x-chatwait-conversation-id')!;
    const cut = await readBlocks(first.response, first.controller, (blocks) => blocks.length >= 6);
    // An uninterrupted read of the same turn: the same message to the same conversation joins it while it generates.
    const whole = await post(server, { 'x-chatwait-conversation-id': contextId });
    expect(whole.response.headers.get('x-chatwait-turn-id')).toBe(turnId);
    const wholeBlocks = readBlocks(whole.response);

    expect(idOf(cut[0]!)).toBe(`${turnId}/start`);
    expect(cut.slice(1).map(idOf)).toEqual(cut.slice(1).map((_, index) => `${turnId}/${index}`));
    const lastEventId = idOf(cut.at(-1)!)!;
    const resumed = await post(server, { 'last-event-id': lastEventId });
    expect(resumed.response.status).toBe(200);
    expect(resumed.response.headers.get('x-chatwait-turn-id')).toBe(turnId);
    const rest = await readBlocks(resumed.response);

    const all = await wholeBlocks;
    expect(cut.join('') + rest.join('')).toBe(all.join(''));
    expect(all.at(-1)).toBe('data: [DONE]\n\n');
    expect(idOf(all.at(-2)!)).toBeUndefined();
    expect(JSON.parse(dataOf(all.at(-2)!))).toMatchObject({ choices: [], usage: { completion_tokens: expect.any(Number) } });
    const answer = all
      .slice(1, -3)
      .map((block) => (JSON.parse(dataOf(block)) as { choices: { delta: { content: string } }[] }).choices[0]!.delta.content)
      .join('');
    const stored = (await (await fetch(`${server.url}/api/v1/conversations/${contextId}`)).json()) as { turns: { answer: string }[] };
    expect(stored.turns[0]!.answer).toBe(answer);
  });

  it('gives a resume after the finish chunk the usage chunk and [DONE] only, and one after start everything but the role chunk', async () => {
    const first = await post(server);
    const all = await readBlocks(first.response);
    const turnId = first.response.headers.get('x-chatwait-turn-id')!;
    const finishId = idOf(all.at(-3)!)!;
    expect(JSON.parse(dataOf(all.at(-3)!)).choices[0].finish_reason).toBe('stop');

    const afterFinish = await readBlocks((await post(server, { 'last-event-id': finishId })).response);
    expect(afterFinish).toEqual(all.slice(-2));
    const afterStart = await readBlocks((await post(server, { 'last-event-id': `${turnId}/start` })).response);
    expect(afterStart).toEqual(all.slice(1));
  });

  it('refuses a malformed Last-Event-ID, one of an unknown turn, and one without stream', async () => {
    const malformed = await post(server, { 'last-event-id': 'not an id' });
    expect(malformed.response.status).toBe(400);
    expect(await malformed.response.json()).toMatchObject({ error: { param: 'Last-Event-ID', type: 'invalid_request_error' } });
    const unknown = await post(server, { 'last-event-id': 'no-such-turn/3' });
    expect(unknown.response.status).toBe(404);
    expect(await unknown.response.json()).toMatchObject({ error: { code: 'not_found' } });
    const notStreamed = await post(server, { 'last-event-id': 'no-such-turn/3' }, { ...BODY, stream: false });
    expect(notStreamed.response.status).toBe(400);
  });

  it('ends a cancelled turn with finish_reason stop and chatwait_finish_reason cancelled', async () => {
    const first = await post(server);
    const turnId = first.response.headers.get('x-chatwait-turn-id')!;
    const reading = readBlocks(first.response);
    const cancel = await fetch(`${server.url}/api/v1/chat/turns/${turnId}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(200);
    const blocks = await reading;
    expect(blocks.at(-1)).toBe('data: [DONE]\n\n');
    expect(JSON.parse(dataOf(blocks.at(-3)!)).choices[0]).toEqual({
      index: 0,
      delta: {},
      logprobs: null,
      finish_reason: 'stop',
      chatwait_finish_reason: 'cancelled',
    });
  });
});
