import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeDemoAnswer } from '../src/model/demo-model.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { spawnServer } from './support/spawn-server.js';
import { postJson, startTestServer, type TestServer } from './support/test-server.js';
import { expectWholeTurn, shapeOf } from './support/tool-stream.js';

let server: TestServer;
let withoutTools: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  withoutTools = await startTestServer({ TOOLS: 'none' });
});
afterAll(async () => {
  await server.close();
  await withoutTools.close();
});

const stream = (target: TestServer, message: string, contextId: string) =>
  readSse(`${target.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`);

describe('the demo model calling the built-in tools', () => {
  it('calculates with the calculator, then answers from its result', async () => {
    const result = await stream(server, 'what is 12*(3+4)?', 'demo-calc');
    expect(shapeOf(result.events).slice(0, 2)).toEqual([
      `tool_call:${result.events[1]!.json.call_id}`,
      `tool_result:${result.events[1]!.json.call_id}`,
    ]);
    expect(result.events[1]!.json).toMatchObject({ name: 'calculate', arguments: '{"expression":"12*(3+4)"}' });
    expect(result.events[2]!.json).toMatchObject({ output: '12*(3+4) = 84', is_error: false });
    const events = await expectWholeTurn(server.url, [result.events], 'demo-calc');
    expect(events.at(-1)!.json.final_output).toContain('and it answered: `12*(3+4) = 84`');
  });

  it('converts units and tells the time in a city', async () => {
    const conversion = await stream(server, 'convert 5 km to miles', 'demo-convert');
    expect(conversion.events[2]!.json.output).toBe('5 kilometers = 3.106855961 miles');
    const time = await stream(server, 'what time is it in Tokyo', 'demo-time');
    expect(time.events[1]!.json).toMatchObject({ name: 'get_current_time', arguments: '{"time_zone":"Asia/Tokyo"}' });
    expect(time.events[2]!.json.output).toMatch(/^\w+day \d{4}-\d\d-\d\d \d\d:\d\d:\d\d in Asia\/Tokyo \(UTC\+09:00\)$/);
    expect(time.events.at(-1)!.json.type).toBe('end');
  });

  it('answers other messages exactly as before, and every message as before with TOOLS=none', async () => {
    const plain = await stream(server, 'Tell me about streaming', 'demo-plain');
    expect(tokensOf(plain.events)).toEqual(composeDemoAnswer('Tell me about streaming', 60));
    const off = await stream(withoutTools, 'what is 12*(3+4)?', 'demo-off');
    expect(shapeOf(off.events).every((type) => type === 'token' || type === 'end')).toBe(true);
    expect(tokensOf(off.events)).toEqual(composeDemoAnswer('what is 12*(3+4)?', 60));
  });
});

describe('the demo model on messages built to make its patterns backtrack', () => {
  // In a process of its own: a catastrophic pattern would block the event loop, and this test must fail, not hang.
  it('answers each within seconds, 10,000 characters or just under the planning limit', async () => {
    const server = spawnServer({ DEMO_TOKENS_PER_SECOND: '0', RATE_LIMIT_REQUESTS_PER_MINUTE: '0' });
    try {
      const url = await server.url;
      const messages = [10_000, 290].flatMap((length) => [
        `what time is it in x${' '.repeat(length - 21)}#`,
        `convert 1 x to y${' '.repeat(length - 18)}\n#`,
        `what is 1${' '.repeat((length - 11) / 2)}+${' '.repeat((length - 11) / 2)}#`,
        `what is 1+1${','.repeat(length - 12)}1`,
      ]);
      for (const message of messages) {
        const started = performance.now();
        const response = await fetch(`${url}/api/v1/chat/wait`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ message }),
          signal: AbortSignal.timeout(5000),
        });
        expect(response.status).toBe(200);
        expect(((await response.json()) as { message: string }).message.length).toBeGreaterThan(0);
        expect(performance.now() - started).toBeLessThan(5000);
      }
      // A short time question still calls the tool (UTC: "x   #" is no place).
      const short = await postJson(`${url}/api/v1/chat/wait`, { message: messages[4] });
      expect(short.body.tool_steps).toMatchObject([{ name: 'get_current_time', arguments: '{"time_zone":"UTC"}' }]);
    } finally {
      server.child.kill('SIGKILL');
    }
  });
});
