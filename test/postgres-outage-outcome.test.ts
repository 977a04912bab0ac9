import { describe, expect, it } from 'vitest';
import { findPostgresBin } from './support/postgres-server.js';
import { serverOnOwnPostgres } from './support/own-postgres.js';
import { hasPostgres } from './support/postgres.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

// This file stops and starts its own PostgreSQL under a running ChatWait: an answer ends while the database is down.
describe.skipIf(!hasPostgres() || !findPostgresBin())('an answer that ends while PostgreSQL is down', { timeout: 120_000 }, () => {
  const own = serverOnOwnPostgres();

  const send = { message: 'long', context_id: 'ends-in-outage', client_message_id: 'send-1' };
  const stream = () =>
    readSse(`${own.url}/api/v1/chat/streaming`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(send),
    });

  it('is stored complete, whole, once the database is back, and the same send then gets it', async () => {
    const streaming = stream();
    await expect.poll(async () => (await getJson(`${own.url}/api/v1/conversations/ends-in-outage`)).status, { timeout: 10_000 }).toBe(200);
    own.database.halt();
    const streamed = await streaming;
    // Not durable yet: the reader is told to try again, not given `end`.
    expect(streamed.events.map((event) => event.json.type)).not.toContain('end');
    expect(streamed.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    const answer = tokensOf(streamed.events).join('');

    const other = await postJson(`${own.url}/api/v1/chat/wait`, { message: 'another one', context_id: 'ends-in-outage' });
    expect(other).toMatchObject({ status: 503, body: { error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true } });

    own.database.resume();
    await expect.poll(async () => (await getJson(`${own.url}/api/v1/health/ready`)).status, { timeout: 20_000, interval: 250 }).toBe(200);
    const stored = (await getJson(`${own.url}/api/v1/conversations/ends-in-outage`)).body.turns[0];
    expect(stored).toMatchObject({ status: 'complete', answer, error_code: null });
    expect(stored.usage).not.toBeNull();
    const resent = await stream();
    expect(resent.events.map((event) => event.json.type)).toEqual(['start', 'resync', 'end']);
    expect(resent.events.at(-1)!.json).toMatchObject({ final_output: answer, finish_reason: 'stop' });
  });
});
