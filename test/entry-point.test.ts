import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { readSse } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';

const servers: SpawnedServer[] = [];

/** Runs the compiled entry point (what `npm start` runs). */
function startMain(env: Record<string, string>) {
  const server = spawnServer(env);
  servers.push(server);
  return { ...server, listening: server.url };
}

afterEach(() => {
  for (const server of servers.splice(0)) server.child.kill('SIGKILL');
});

describe('the entry point', () => {
  it('starts on the demo model with no configuration, logs JSON and exits 0 on SIGTERM', async () => {
    const main = startMain({});
    const url = await main.listening;
    const health = (await (await fetch(`${url}/health`)).json()) as { model: { demo: boolean; name: string } };
    expect(health.model).toEqual({ provider: 'demo', name: 'chatwait-demo', demo: true });
    const stream = await readSse(`${url}/api/v1/chat/streaming?message=hello`);
    expect(stream.events.at(-1)!.json.type).toBe('end');
    main.child.kill('SIGTERM');
    expect(await main.exited).toBe(0);
    const lines = main.output().stdout.trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(lines.some((line) => JSON.parse(line).msg === 'turn finished')).toBe(true);
  });

  it('refuses to start on an invalid value with one line naming the variable', async () => {
    const main = startMain({ PORT: 'eighty', GEMINI_API_KEY: 'secret-gemini-key' });
    expect(await main.exited).toBe(1);
    const { stderr } = main.output();
    expect(stderr.trim()).toBe('Invalid configuration: PORT must be an integer from 0 to 65535 (got "eighty")');
  });

  it('never logs an upstream response body or a stack trace', async () => {
    const fake = await startFakeOpenAI();
    fake.enqueue(
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 401 },
    );
    const main = startMain({ OPENAI_BASE_URL: fake.baseUrl, UPSTREAM_RETRY_DELAY_MS: '1' });
    try {
      const url = await main.listening;
      for (let index = 0; index < 2; index++) {
        await fetch(`${url}/api/v1/chat/wait`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"message":"hi"}',
        });
      }
      main.child.kill('SIGTERM');
      await main.exited;
      const { stdout } = main.output();
      expect(stdout).toContain('"error_code":"UPSTREAM_ERROR"');
      expect(stdout).toContain('"error_code":"MODEL_UNAVAILABLE"');
      expect(stdout).not.toContain('secret body');
      expect(stdout).not.toMatch(/\n\s+at |"stack"/);
    } finally {
      await fake.close();
    }
  });

  it('never logs an API key', async () => {
    const main = startMain({ API_KEYS: 'very-secret-key-42' });
    const url = await main.listening;
    await fetch(`${url}/api/v1/chat/wait`, {
      method: 'POST',
      headers: { authorization: 'Bearer very-secret-key-42', 'content-type': 'application/json' },
      body: '{"message":"hi"}',
    });
    await fetch(`${url}/api/v1/chat/wait`, { method: 'POST', headers: { authorization: 'Bearer very-secret-key-42x' } });
    main.child.kill('SIGTERM');
    await main.exited;
    expect(main.output().stdout).not.toContain('very-secret-key-42');
  });

  it('logs one line for every stream, also one its client closed before the end', async () => {
    const main = startMain({ DEMO_TOKENS_PER_SECOND: '50', DEMO_RESPONSE_TOKENS: '100' });
    const url = await main.listening;
    const lines = (requestId: string) =>
      main
        .output()
        .stdout.split('\n')
        .filter((line) => line.includes(`"request_id":"${requestId}"`))
        .map((line) => JSON.parse(line));
    const path = `${url}/api/v1/chat/streaming?message=hello&context_id=logged`;
    const left = await readSse(path, { headers: { 'x-request-id': 'left-early' }, until: (event) => event.json.type === 'token' });
    await expect.poll(() => lines('left-early'), { timeout: 5000, interval: 50 }).toHaveLength(1);
    expect(lines('left-early')[0]).toMatchObject({
      msg: 'request',
      path: '/api/v1/chat/streaming',
      status: 200,
      closed_by: 'client',
      resumed: false,
      turn_id: left.events[0]!.json.turn_id,
    });
    // Read to the end (Fastify's own line): still exactly one.
    await readSse(path, { headers: { 'x-request-id': 'read-to-end', 'last-event-id': left.events.at(-1)!.id! } });
    await expect.poll(() => lines('read-to-end'), { timeout: 5000, interval: 50 }).toHaveLength(1);
    expect(lines('read-to-end')[0]).toMatchObject({ msg: 'request', status: 200, closed_by: 'server', resumed: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(lines('left-early')).toHaveLength(1);
    expect(lines('read-to-end')).toHaveLength(1);
  });
});
