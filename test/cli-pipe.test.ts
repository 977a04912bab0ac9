import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, cliEnv } from './support/run-cli.js';
import { startTestServer, type TestServer } from './support/test-server.js';

// The terminal client writing into a real shell pipeline whose reader leaves early (`| head -1`).

let server: TestServer;
beforeAll(async () => {
  // Slow enough that the answer is still being written when `head` has its line and goes.
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '50' });
});
afterAll(() => server.close());

/** Runs `chatwait …args | head -1` in bash; resolves with head's line, chatwait's exit status and the pipeline's stderr. */
function pipeToHead(args: string[]) {
  const script = '"$@" | head -1; echo "status=${PIPESTATUS[0]}"';
  const child = spawn('bash', ['-c', script, 'pipeline', process.execPath, CLI_MAIN, ...args], { env: cliEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<{ line: string; status: string; stderr: string }>((resolve) =>
    child.on('close', () => {
      const [line = '', status = ''] = stdout.split('\n');
      resolve({ line, status: status.replace('status=', ''), stderr });
    }),
  );
}

/** The latest turn of a conversation once it is no longer generating. */
async function settledTurn(contextId: string) {
  for (;;) {
    const turn = await server.store.latestTurn(contextId);
    if (turn && turn.status !== 'streaming') return turn;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('chatwait writing into a closed pipe', () => {
  it('ask | head -1 exits quietly with 141 and stops the answer on the server, keeping what was written', async () => {
    const result = await pipeToHead(['ask', '--url', server.url, '--context', 'pipe-ask', 'a long answer, 2000 tokens']);
    expect(result.stderr).toBe('');
    expect(result.line.length).toBeGreaterThan(0);
    expect(result.status).toBe('141');
    const turn = await settledTurn('pipe-ask');
    expect(turn.status).toBe('cancelled');
    expect(turn.answer.startsWith(result.line)).toBe(true);
  });

  it('ask --json | head -1 does the same', async () => {
    const result = await pipeToHead(['ask', '--url', server.url, '--json', '--context', 'pipe-json', 'a long answer, 2000 tokens']);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.line)).toMatchObject({ type: 'start' });
    expect(result.status).toBe('141');
    expect((await settledTurn('pipe-json')).status).toBe('cancelled');
  });
});
