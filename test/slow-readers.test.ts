import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { readSse, tokensOf } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';

const READERS = 200;
let server: SpawnedServer | undefined;
const sockets: Socket[] = [];
afterAll(() => {
  for (const socket of sockets) socket.destroy();
  server?.child.kill('SIGKILL');
});

async function openMetric(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^chatwait_open_streams (\d+)/m.exec(text)![1]);
}

describe('clients that never read', () => {
  it(`cannot make the server buffer without bound: ${READERS} of them on one long answer`, { timeout: 120_000 }, async () => {
    server = spawnServer({
      DEMO_TOKENS_PER_SECOND: '0',
      MAX_OUTPUT_TOKENS: '30000',
      RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
      MAX_STREAMS_PER_CLIENT: '0',
      SSE_MAX_BUFFER_BYTES: '262144',
      SSE_STALL_TIMEOUT_SECONDS: '2',
    });
    const url = await server.url;
    const { port } = new URL(url);
    const message = encodeURIComponent('a very long answer, 30000 tokens');
    const whole = await readSse(`${url}/api/v1/chat/streaming?message=${message}&context_id=slow`);
    const turnId = whole.events[0]!.json.turn_id as string;
    const answerBytes = whole.events.reduce((total, event) => total + event.data.length, 0);
    expect(answerBytes).toBeGreaterThan(2_500_000);
    const before = server.rss();

    for (let index = 0; index < READERS; index++) {
      const socket = connect(Number(port), '127.0.0.1');
      socket.pause();
      socket.on('error', () => {});
      socket.write(
        `GET /api/v1/chat/streaming?message=${message}&context_id=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: ${turnId}/start\r\n\r\n`,
      );
      sockets.push(socket);
    }
    // Writes stop while a socket is full; each non-reader is then cut off (or its data sits in the
    // kernel's socket buffers, which loopback makes large): none stays open, and the process stays small.
    await expect.poll(() => openMetric(url), { timeout: 90_000, interval: 250 }).toBe(0);
    const growth = server.rss() - before;
    console.log(
      `${READERS} non-reading clients of a ${(answerBytes / 1e6).toFixed(1)} MB answer: server RSS grew by ${(growth / 1e6).toFixed(1)} MB`,
    );
    // Buffering the whole answer for each would take READERS × answerBytes (hundreds of MB).
    expect(growth).toBeLessThan((READERS * answerBytes) / 4);
    expect(growth).toBeLessThan(150_000_000);

    // Other readers are unaffected, and the turn is still there to resume.
    const again = await readSse(`${url}/api/v1/chat/streaming?message=${message}&context_id=slow`, {
      headers: { 'last-event-id': `${turnId}/start` },
    });
    expect(tokensOf(again.events).join('')).toBe(whole.events.at(-1)!.json.final_output);
  });
});
