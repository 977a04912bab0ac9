import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { readSse } from './support/sse-client.js';

const MAIN = resolve(import.meta.dirname, '../dist/main.js');
const children: ChildProcessWithoutNullStreams[] = [];

/** Runs the compiled entry point (what `npm start` runs) in an empty directory, so no developer .env is read. */
function startMain(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    cwd: mkdtempSync(join(tmpdir(), 'chatwait-main-')),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', DATABASE_URL: 'memory', ...env },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const listening = new Promise<string>((resolveUrl, reject) => {
    child.stdout.on('data', () => {
      const match = /listening on (http:\/\/[^\s"]+)/.exec(stdout);
      if (match) resolveUrl(match[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
  // Not every test waits for `listening` (a refused start never listens).
  listening.catch(() => {});
  return { child, exited, listening, output: () => ({ stdout, stderr }) };
}

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
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
    fake.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 401 });
    const main = startMain({ OPENAI_BASE_URL: fake.baseUrl, UPSTREAM_RETRY_DELAY_MS: '1' });
    try {
      const url = await main.listening;
      for (let index = 0; index < 2; index++) {
        await fetch(`${url}/api/v1/chat/wait`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"message":"hi"}' });
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
});
