import { createRequire } from 'node:module';
import { fetchEventSource } from '@microsoft/fetch-event-source';
import { EventSource as EventSourceV4 } from 'eventsource-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInEventCuttingProxy, type InEventCut } from './support/cutting-proxy.js';
import { startTestServer, type TestServer } from './support/test-server.js';

/** eventsource 2.x: CommonJS without types, so required and typed here (only what the tests use). */
interface EventSourceLike {
  onmessage: ((event: { data: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(): void;
}
const EventSourceV2 = createRequire(import.meta.url)('eventsource') as new (url: string) => EventSourceLike;

// @microsoft/fetch-event-source is written for browsers: it takes its timers from `window` and
// unregisters a visibility listener from `document` (even with openWhenHidden). Node has neither.
const browserGlobals = globalThis as unknown as { window?: unknown; document?: unknown };
browserGlobals.window ??= { setTimeout, clearTimeout };
browserGlobals.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };

const MESSAGE = 'answer in 400 tokens';
const CUTS = 45;
const KINDS: InEventCut[] = ['after-first-line', 'inside-second-line', 'inside-first-line'];

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '2000' });
});
afterAll(() => server.close());

/** A proxy that cuts each of the first CUTS streams inside an event, after 1 to 11 whole events, at each kind of cut in turn. */
const cuttingProxy = () =>
  startInEventCuttingProxy(server.url, {
    cutFor: (stream) => (stream < CUTS ? { afterEvents: 1 + ((stream * 7) % 11), at: KINDS[stream % KINDS.length]! } : undefined),
    retryMs: 1,
  });

/** Asserts the messages a client got make one whole answer: every token exactly once, in order, then the end. */
function expectEveryTokenOnce(messages: string[]) {
  expect(messages.filter((data) => data === '')).toEqual([]);
  const events = messages.map(
    (data) => JSON.parse(data) as { type: string; token?: string; token_index?: number; final_output?: string; token_count?: number },
  );
  const tokens = events.filter((event) => event.type === 'token');
  const end = events.at(-1)!;
  expect(end.type).toBe('end');
  expect(tokens.map((event) => event.token_index)).toEqual(tokens.map((_, index) => index));
  expect(tokens.length).toBe(end.token_count);
  expect(tokens.length).toBeGreaterThan(300);
  expect(tokens.map((event) => event.token).join('')).toBe(end.final_output);
}

/** Follows one turn with @microsoft/fetch-event-source (POST, as browsers use it), reconnecting by itself; returns every message's data. */
async function followWithFetchEventSource(baseUrl: string, contextId: string): Promise<string[]> {
  const messages: string[] = [];
  const controller = new AbortController();
  let failures = 0;
  await fetchEventSource(`${baseUrl}/api/v1/chat/streaming`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: MESSAGE, context_id: contextId }),
    signal: controller.signal,
    openWhenHidden: true,
    fetch: globalThis.fetch,
    onmessage(event) {
      messages.push(event.data);
      if (/"type":"(end|error)"/.test(event.data)) controller.abort();
    },
    onerror(error) {
      // Retried (after the stream's retry interval) unless this throws.
      if (++failures > 4 * CUTS) throw error;
    },
  });
  return messages;
}

/** Follows one turn with an EventSource implementation (GET; it resumes with Last-Event-ID by itself); returns every message's data. */
function followWithEventSource(
  EventSourceClass: new (url: string) => EventSourceLike,
  baseUrl: string,
  contextId: string,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const messages: string[] = [];
    let failures = 0;
    const source = new EventSourceClass(`${baseUrl}/api/v1/chat/streaming?message=${encodeURIComponent(MESSAGE)}&context_id=${contextId}`);
    source.onmessage = (event) => {
      messages.push(event.data);
      if (/"type":"(end|error)"/.test(event.data)) {
        source.close();
        resolve(messages);
      }
    };
    source.onerror = () => {
      if (++failures <= 4 * CUTS) return;
      source.close();
      reject(new Error(`gave up after ${failures} connection failures`));
    };
  });
}

/** Runs `follow` through a proxy that cuts connections inside events, then checks it cut them all. */
async function throughCuttingProxy(follow: (url: string) => Promise<void>): Promise<void> {
  const proxy = await cuttingProxy();
  try {
    await follow(proxy.url);
    expect(proxy.cuts()).toBe(CUTS);
  } finally {
    await proxy.close();
  }
}

describe('popular SSE clients through connections cut inside events', () => {
  it('@microsoft/fetch-event-source gets every token exactly once, in order, over many cuts', async () => {
    await throughCuttingProxy(async (url) => expectEveryTokenOnce(await followWithFetchEventSource(url, 'cut-fetch-event-source')));
  }, 60_000);

  it('eventsource 2.x gets every token exactly once, in order, over many cuts', async () => {
    await throughCuttingProxy(async (url) => {
      const messages = await followWithEventSource(EventSourceV2, url, 'cut-eventsource-2');
      // eventsource 2.x keeps the data lines of an event cut before its blank line and puts them in front of
      // the next connection's first event (the spec says to discard them): that message is the cut event's
      // JSON, a newline, then the resumed start. The cut event itself is sent again (its id never arrived).
      const merged = messages.filter((data) => data.includes('\n'));
      for (const data of merged) {
        const lines = data.split('\n');
        expect(lines).toHaveLength(2);
        expect(JSON.parse(lines[1]!)).toMatchObject({ type: 'start', resumed: true });
      }
      expectEveryTokenOnce(messages.filter((data) => !data.includes('\n')));
    });
  }, 60_000);

  it('eventsource 4.x gets every token exactly once, in order, over many cuts', async () => {
    await throughCuttingProxy(async (url) =>
      expectEveryTokenOnce(
        await followWithEventSource(EventSourceV4 as unknown as new (url: string) => EventSourceLike, url, 'cut-eventsource-4'),
      ),
    );
  }, 60_000);
});

describe('comments and heartbeats', () => {
  let slow: TestServer;
  beforeAll(async () => {
    slow = await startTestServer({ DEMO_TOKENS_PER_SECOND: '40', SSE_HEARTBEAT_SECONDS: '0.05' });
  });
  afterAll(() => slow.close());

  it('never reach @microsoft/fetch-event-source as an empty message', async () => {
    const messages: string[] = [];
    const controller = new AbortController();
    await fetchEventSource(`${slow.url}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 12 tokens')}`, {
      signal: controller.signal,
      openWhenHidden: true,
      fetch: globalThis.fetch,
      onmessage(event) {
        messages.push(event.data);
        if (/"type":"(end|error)"/.test(event.data)) controller.abort();
      },
      onerror(error) {
        throw error;
      },
    });
    // 12 tokens at 40 a second take about 0.3 s: several heartbeats went by.
    expect(messages.length).toBeGreaterThan(12);
    expect(messages.filter((data) => data === '')).toEqual([]);
    expect(JSON.parse(messages.at(-1)!).type).toBe('end');
  });
});
