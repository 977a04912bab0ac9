import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { readSse } from './support/sse-client.js';
import { getJson, postJson } from './support/test-server.js';

const MAIN = resolve(import.meta.dirname, '../dist/main.js');
const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, [MAIN], {
    cwd: mkdtempSync(join(tmpdir(), 'chatwait-shutdown-')),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
  });
  children.push(child);
  let output = '';
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const url = new Promise<string>((resolveUrl, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (http:\/\/[^\s"]+)/.exec(output);
      if (match) resolveUrl(match[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}: ${output}`)));
  });
  url.catch(() => {});
  return { child, url, exited, output: () => output };
}

describe('graceful shutdown on SIGTERM', () => {
  it('turns not ready, refuses new turns, lets short turns finish, ends long ones with a retryable error, and exits 0', async () => {
    const database = join(mkdtempSync(join(tmpdir(), 'chatwait-shutdown-db-')), 'chat.db');
    const server = startServer({ DATABASE_URL: `sqlite:${database}`, DEMO_TOKENS_PER_SECOND: '40', SHUTDOWN_DRAIN_SECONDS: '2' });
    const url = await server.url;
    const stream = (message: string, contextId: string) =>
      readSse(`${url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`);
    const long = stream('a long one, 2000 tokens', 'long');
    const short = stream('a short one, 40 tokens', 'short');
    await new Promise((resolveWait) => setTimeout(resolveWait, 300));
    server.child.kill('SIGTERM');
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));

    const ready = await getJson(`${url}/api/v1/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('not_ready');
    const refused = await postJson(`${url}/api/v1/chat/wait`, { message: 'too late', context_id: 'late' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error_code: 'SHUTTING_DOWN' });

    const [longResult, shortResult] = await Promise.all([long, short]);
    expect(shortResult.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
    expect(longResult.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'SHUTTING_DOWN', retryable: true });
    expect(await server.exited).toBe(0);

    const store = new SqliteConversationStore(database);
    expect((await store.latestTurn('short'))!.status).toBe('complete');
    const interrupted = (await store.latestTurn('long'))!;
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.answer.length).toBeGreaterThan(0);
    await store.close();
  });
});
