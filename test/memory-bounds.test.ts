import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseSse, readSse, tokensOf, type SseEvent } from './support/sse-client.js';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

const servers: TestServer[] = [];
afterAll(() => Promise.all(servers.map((server) => server.close())));

async function start(env: Record<string, string>): Promise<TestServer> {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

const streamUrl = (server: TestServer, message: string, contextId: string) =>
  `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`;

/** A number from a Prometheus text body. */
function metricValue(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

describe('the cap on turns one client has generating', () => {
  it('refuses a new turn past MAX_GENERATING_TURNS_PER_CLIENT with 429 TOO_MANY_GENERATING_TURNS until one ends', async () => {
    const server = await start({ MAX_GENERATING_TURNS_PER_CLIENT: '2', DEMO_TOKENS_PER_SECOND: '40', TRUST_PROXY: 'true' });
    const client = { 'x-forwarded-for': '203.0.113.7' };
    const message = 'keep going, 2000 tokens';
    // Two answers started, their connections closed at once: the answers run on and keep their slots.
    const started = [];
    for (const contextId of ['cap-1', 'cap-2']) {
      started.push(
        await readSse(streamUrl(server, message, contextId), { headers: client, until: (_event, events) => events.length === 2 }),
      );
    }
    const turnIds = started.map((result) => result.events[0]!.json.turn_id as string);

    const refused = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'one more, 3 tokens', context_id: 'cap-3' }, client);
    expect(refused.status).toBe(429);
    expect(refused.body.error_code).toBe('TOO_MANY_GENERATING_TURNS');
    expect(refused.body.message).toMatch(/2 answers generating/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const refusedStream = await readSse(streamUrl(server, 'one more, 3 tokens', 'cap-3'), { headers: client });
    expect(refusedStream.status).toBe(429);
    expect(refusedStream.error.error_code).toBe('TOO_MANY_GENERATING_TURNS');

    // Attaching to or resuming a running answer is no new turn.
    const attached = await readSse(`${streamUrl(server, message, 'cap-1')}&last_token_index=1`, {
      headers: client,
      until: (_event, events) => events.length === 2,
    });
    expect(attached.status).toBe(200);
    expect(attached.events[0]!.json).toMatchObject({ resumed: true, turn_id: turnIds[0] });
    const resumed = await readSse(streamUrl(server, message, 'cap-2'), {
      headers: { ...client, 'last-event-id': `${turnIds[1]}/0` },
      until: (_event, events) => events.length === 2,
    });
    expect(resumed.status).toBe(200);
    // Another client has slots of its own.
    expect(
      (await postJson(`${server.url}/api/v1/chat/wait`, { message: 'someone else, 3 tokens' }, { 'x-forwarded-for': '203.0.113.8' }))
        .status,
    ).toBe(200);

    // Once one answer has ended, its slot is free again.
    expect((await postJson(`${server.url}/api/v1/chat/turns/${turnIds[0]}/cancel`, {}, client)).status).toBe(200);
    const admitted = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'one more, 3 tokens', context_id: 'cap-3' }, client);
    expect(admitted.status).toBe(200);
    await postJson(`${server.url}/api/v1/chat/turns/${turnIds[1]}/cancel`, {}, client);
  });
});

describe('the replay-log byte budget', () => {
  it('sends resync with the stored answer, then end, to a late reader of a turn the budget pushed out', async () => {
    // About 55 KB a 200-token answer: the third one pushes the first out.
    const server = await start({ REPLAY_LOG_MAX_BYTES: '140000' });
    const message = 'budget me, 200 tokens';
    const answers = [];
    for (const contextId of ['budget-1', 'budget-2', 'budget-3']) answers.push(await readSse(streamUrl(server, message, contextId)));
    const [oldest, , newest] = answers.map((answer) => ({
      turnId: answer.events[0]!.json.turn_id as string,
      end: answer.events.at(-1)!.json,
    }));

    const late = await readSse(streamUrl(server, message, 'budget-1'), { headers: { 'last-event-id': `${oldest!.turnId}/5` } });
    expect(late.events.map((event) => event.json.type)).toEqual(['start', 'resync', 'end']);
    expect(late.events[1]!.json).toMatchObject({ final_output: oldest!.end.final_output, token_count: oldest!.end.token_count });
    expect(late.events[2]!.json).toMatchObject({ finish_reason: 'stop', final_output: oldest!.end.final_output });
    // The newest is still held: it replays event by event.
    const recent = await readSse(streamUrl(server, message, 'budget-3'), { headers: { 'last-event-id': `${newest!.turnId}/5` } });
    expect(recent.events[1]!.json).toMatchObject({ type: 'token', token_index: 6 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricValue(metrics, 'chatwait_replay_log_bytes')).toBeLessThanOrEqual(140_000);
  });

  it('ends a reader that falls behind a turn pushed out of memory with resync and end, not silence', async () => {
    // One long answer alone is over the budget: it leaves memory as soon as it ends.
    const server = await start({ REPLAY_LOG_MAX_BYTES: '1000000', MAX_OUTPUT_TOKENS: '100000' });
    const response = await fetch(streamUrl(server, 'a long one, 100000 tokens', 'behind'));
    const reader = response.body!.getReader();
    const chunks: Uint8Array[] = [(await reader.read()).value!];
    // The reader stops reading (its socket fills, the server waits) while the answer runs to its end.
    await expect
      .poll(async () => (await getJson(`${server.url}/api/v1/conversations/behind`)).body.turns?.at(-1)?.status, {
        timeout: 60_000,
        interval: 200,
      })
      .toBe('complete');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const events: SseEvent[] = [];
    for await (const item of parseSse(new Response(Buffer.concat(chunks)).body!)) if (item.kind === 'event') events.push(item.event);
    const stored = (await getJson(`${server.url}/api/v1/conversations/behind`)).body.turns.at(-1);
    expect(events.slice(-2).map((event) => event.json.type)).toEqual(['resync', 'end']);
    expect(events.at(-2)!.json.final_output).toBe(stored.answer);
    expect(events.at(-1)!.json).toMatchObject({ finish_reason: 'stop', final_output: stored.answer, token_count: 100_000 });
    // What came before the resync is the answer's beginning, in order.
    const tokens = tokensOf(events);
    expect(tokens.length).toBeLessThan(100_000);
    expect(stored.answer.startsWith(tokens.join(''))).toBe(true);
  }, 90_000);
});

describe('the default MAX_OUTPUT_TOKENS', () => {
  it('reaches an OpenAI-compatible provider as max_tokens when the variable is not set', async () => {
    const fake = await startFakeOpenAI();
    try {
      const server = await start({ OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model' });
      fake.enqueue({ kind: 'stream', tokens: ['Hello', '!'] });
      expect((await postJson(`${server.url}/api/v1/chat/wait`, { message: 'hi' })).status).toBe(200);
      expect(fake.requests.at(-1)!.body.max_tokens).toBe(8192);
    } finally {
      await fake.close();
    }
  });
});

describe('the heap under many long answers', () => {
  let server: SpawnedServer | undefined;
  afterEach(() => {
    server?.child.kill('SIGKILL');
  });

  it('stays under the replay-log budget plus a margin while one client asks for answer after long answer', async () => {
    const budget = 2 * 1_048_576;
    // A heap this small is what the answers would overflow if the logs kept them (about 270 bytes a token).
    server = spawnServer({
      NODE_OPTIONS: '--max-old-space-size=64',
      DATABASE_URL: 'sqlite:./chatwait.db',
      DEMO_TOKENS_PER_SECOND: '0',
      REPLAY_LOG_MAX_BYTES: String(budget),
      RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
      LOG_LEVEL: 'info',
    });
    const url = await server.url;
    const samples: { heap: number; log: number }[] = [];
    let running = true;
    const sampler = (async () => {
      while (running) {
        const text = await (await fetch(`${url}/metrics`)).text();
        samples.push({
          heap: metricValue(text, 'chatwait_nodejs_heap_size_used_bytes')!,
          log: metricValue(text, 'chatwait_replay_log_bytes')!,
        });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    const message = 'answer in 100000 tokens';
    const counts: number[] = [];
    // Three at a time (the default cap): two wait for the answer, one reads it streamed.
    const waiter = async () => {
      for (let index = 0; index < 9; index++) {
        const response = await postJson(`${url}/api/v1/chat/wait`, { message });
        expect(response.status).toBe(200);
        counts.push(response.body.token_count);
      }
    };
    const streamer = async () => {
      for (let index = 0; index < 9; index++) {
        // Read whole; only the last event (the end) is parsed, so the test's own parsing does not set the pace.
        const text = await (await fetch(`${url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}`)).text();
        const end = JSON.parse(text.slice(text.lastIndexOf('data: ') + 6).split('\n')[0]!);
        expect(end.type).toBe('end');
        counts.push(end.token_count);
      }
    };
    try {
      await Promise.all([waiter(), waiter(), streamer()]);
    } catch (error) {
      // A server that ran out of heap resets every connection: say so rather than "fetch failed".
      const exited = await Promise.race([server.exited, new Promise((resolve) => setTimeout(() => resolve('running'), 2000))]);
      if (exited !== 'running')
        throw new Error(
          `the server died (${
            server
              .output()
              .stderr.split('\n')
              .find((line) => /heap|memory/i.test(line)) ?? exited
          })`,
          { cause: error },
        );
      throw error;
    } finally {
      running = false;
      await sampler.catch(() => {});
    }
    // Every answer stopped at the default MAX_OUTPUT_TOKENS, whatever the message asked for.
    expect(counts).toEqual(counts.map(() => 8192));
    // The logs held at most the budget plus the three answers being written (about 270 bytes a token).
    expect(Math.max(...samples.map((sample) => sample.log))).toBeLessThanOrEqual(budget + 3 * 8192 * 300);
    const final = await (await fetch(`${url}/metrics`)).text();
    expect(metricValue(final, 'chatwait_replay_log_bytes')).toBeLessThanOrEqual(budget);
    // 27 answers of 8192 tokens, about 60 MB if kept; the heap stays near its idle size plus the budget.
    const idle = samples[0]!.heap;
    expect(Math.max(...samples.map((sample) => sample.heap))).toBeLessThan(idle + budget + 3 * 8192 * 300 + 24 * 1_048_576);
    expect(server.child.exitCode).toBeNull();
  }, 180_000);
});
