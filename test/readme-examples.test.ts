import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSse } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';

const run = promisify(execFile);

/** The curl commands of a markdown file's bash blocks, backslash continuations joined. */
function curlCommands(file: string): string[] {
  const markdown = readFileSync(resolve(import.meta.dirname, '..', file), 'utf8');
  const commands: string[] = [];
  for (const block of markdown.matchAll(/```bash\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, '');
    for (const line of joined.split('\n')) if (line.trim().startsWith('curl ')) commands.push(line.trim());
  }
  return commands;
}

/** Runs a command as written, but against the test server instead of localhost:8000. */
async function runAgainst(server: TestServer, command: string) {
  const { stdout } = await run('bash', ['-c', command.replaceAll('http://localhost:8000', server.url)], { timeout: 20_000 });
  return stdout;
}

/** Checks what a curl example printed: a JSON success body, or a well-formed SSE stream that ends. */
async function expectSuccessfulOutput(output: string) {
  if (output.trimStart().startsWith('{')) {
    const body = JSON.parse(output);
    expect(body.error_code).toBeUndefined();
    return;
  }
  const events = [];
  for await (const item of parseSse(new Blob([output]).stream())) if (item.kind === 'event') events.push(item.event.json);
  expect(events[0].type).toBe('start');
  expect(events.at(-1).type).toBe('end');
}

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('the curl examples', () => {
  const ours = curlCommands('README.md');
  const original = curlCommands('test/fixtures/original-chatwait-readme.md');

  it('are found in both READMEs', () => {
    expect(ours.length).toBeGreaterThanOrEqual(5);
    expect(original.length).toBeGreaterThanOrEqual(5);
  });

  it.each(ours)('of our README work as written: %s', async (command) => {
    await expectSuccessfulOutput(await runAgainst(server, command));
  });

  it.each(original)('of the original ChatWait README work as written: %s', async (command) => {
    await expectSuccessfulOutput(await runAgainst(server, command));
  });
});
