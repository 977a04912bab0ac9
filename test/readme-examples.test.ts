import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSse } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';

const run = promisify(execFile);
const MARK = '<<<example end>>>';

/**
 * The bash blocks of a markdown file whose every command is curl or a variable set from curl,
 * continuations joined. Blocks with anything else (npm ci, npm start) are never run here.
 */
function serverBlocks(file: string): string[] {
  const markdown = readFileSync(resolve(import.meta.dirname, '..', file), 'utf8');
  return [...markdown.matchAll(/```bash\n([\s\S]*?)```/g)]
    .map((block) => block[1]!.replace(/\\\n\s*/g, ''))
    .filter((block) => commandLines(block).length > 0 && commandLines(block).every((line) => /^(curl |[a-z_]+=\$\(curl )/.test(line)));
}

function commandLines(block: string): string[] {
  return block
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Runs a block as written, in one shell, but against the test server; returns each curl command's output. */
async function runBlock(server: TestServer, block: string): Promise<{ command: string; output: string }[]> {
  const lines = commandLines(block);
  const commands = lines.filter((line) => line.trim().startsWith('curl '));
  const script = ['set -e', ...lines.map((line) => (line.trim().startsWith('curl ') ? `${line}; echo '${MARK}'` : line))].join('\n');
  const { stdout } = await run('bash', ['-c', script.replaceAll('http://localhost:8000', server.url)], { timeout: 30_000 });
  const outputs = stdout.split(`${MARK}\n`);
  return commands.map((command, index) => ({ command, output: outputs[index] ?? '' }));
}

/** Checks what a curl example printed: nothing (204), a JSON success body, or a well-formed SSE stream that ends. */
async function expectSuccessfulOutput(command: string, output: string) {
  if (output.trim() === '') {
    expect(command).toContain('DELETE');
    return;
  }
  if (output.trimStart().startsWith('{')) {
    const body = JSON.parse(output);
    expect(body.error_code, `${command} → ${output.slice(0, 200)}`).toBeUndefined();
    return;
  }
  const events = [];
  for await (const item of parseSse(new Blob([output]).stream())) if (item.kind === 'event') events.push(item.event.json);
  expect(events[0].type, command).toBe('start');
  expect(events.at(-1).type, command).toBe('end');
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '2000' });
});
afterAll(() => server.close());

describe('the curl examples', () => {
  it('of our README work as written, in order', async () => {
    const blocks = serverBlocks('README.md');
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    let count = 0;
    for (const block of blocks) {
      for (const { command, output } of await runBlock(server, block)) {
        await expectSuccessfulOutput(command, output);
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(12);
  });

  it('of the original ChatWait README work as written', async () => {
    let count = 0;
    for (const block of serverBlocks('test/fixtures/original-chatwait-readme.md')) {
      for (const { command, output } of await runBlock(server, block)) {
        await expectSuccessfulOutput(command, output);
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(5);
  });
});
