import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSse, type SseEvent } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';
import { seededRandom as random } from './support/seeded-random.js';

const STREAMS = 200;
const CONCURRENCY = 40;
const ANSWER_TOKENS = 300;
const SEED = Number(process.env.CHAOS_SEED ?? 20261125);

let server: TestServer;
beforeAll(async () => {
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-chaos-'));
  server = await startTestServer({ DATABASE_URL: `sqlite:${join(directory, 'chaos.db')}`, DEMO_TOKENS_PER_SECOND: '1000' });
});
afterAll(() => server.close());

/** One client: reads its stream, cutting the connection at each cut point and resuming by alternating methods. */
async function chaoticClient(index: number, next: () => number) {
  const contextId = `chaos-${index}`;
  const message = `stream ${index}: answer in ${ANSWER_TOKENS} tokens`;
  const url = `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`;
  const cutCount = 1 + Math.floor(next() * 3);
  const cuts = [...new Set(Array.from({ length: cutCount }, () => 1 + Math.floor(next() * (ANSWER_TOKENS - 10))))].sort((a, b) => a - b);
  const received: SseEvent[] = [];
  const tokens = () => received.filter((event) => event.json.type === 'token').length;
  let turnId: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const cut = cuts[attempt];
    const byHeader = (index + attempt) % 2 === 0;
    const lastId = received.at(-1)?.id;
    const resumeUrl = attempt === 0 || byHeader ? url : `${url}&last_token_index=${tokens()}`;
    const headers: Record<string, string> = attempt > 0 && byHeader && lastId ? { 'last-event-id': lastId } : {};
    const result = await readSse(resumeUrl, {
      headers,
      until: (event) => {
        if (event.json.type === 'start') return false;
        received.push(event);
        return cut !== undefined && tokens() >= cut;
      },
    });
    expect(result.status).toBe(200);
    const start = result.events[0]!.json;
    turnId ??= start.turn_id;
    expect(start.turn_id).toBe(turnId);
    expect(start.resumed).toBe(attempt > 0);
    if (received.at(-1)?.json.type === 'end') break;
    expect(cut, `stream ${index} ended its connection without an end event`).toBeDefined();
  }
  return { contextId, turnId: turnId!, received, cuts };
}

describe('chaos: many streams cut and resumed at random points', () => {
  it(`delivers every token exactly once across ${STREAMS} streams, each cut one to three times`, async () => {
    const next = random(SEED);
    const plans = Array.from({ length: STREAMS }, (_, index) => index);
    const results: Awaited<ReturnType<typeof chaoticClient>>[] = [];
    for (let offset = 0; offset < plans.length; offset += CONCURRENCY) {
      const wave = plans.slice(offset, offset + CONCURRENCY);
      results.push(...(await Promise.all(wave.map((index) => chaoticClient(index, next)))));
    }
    let resumes = 0;
    for (const { contextId, turnId, received, cuts } of results) {
      resumes += cuts.length;
      const tokenEvents = received.filter((event) => event.json.type === 'token');
      expect(
        tokenEvents.map((event) => event.json.token_index),
        `${contextId} (seed ${SEED})`,
      ).toEqual(tokenEvents.map((_, index) => index));
      const end = received.at(-1)!.json;
      expect(end.type).toBe('end');
      expect(tokenEvents.map((event) => event.json.token).join('')).toBe(end.final_output);
      expect(end.token_count).toBe(tokenEvents.length);
      const stored = await server.store.getTurn(turnId);
      expect(stored).toMatchObject({ status: 'complete', answer: end.final_output, tokenCount: end.token_count });
      expect((await server.store.getConversation(contextId))!.turns).toHaveLength(1);
    }
    expect(resumes).toBeGreaterThanOrEqual(STREAMS);
  });
});
