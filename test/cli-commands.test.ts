import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTamperingProxy } from './support/cutting-proxy.js';
import { CLI_MAIN, closedPort, runCli, SGR } from './support/run-cli.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

// The `chatwait` commands but ask and chat (conversations, health, smoke, keys, help, the README's
// examples) run for real (node dist/cli/main.js) against a listening server.

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '300' });
});
afterAll(() => server.close());

const at = (url = server.url) => ['--url', url];

/**
 * Whether `jq` is here for the README example that pipes into it. CI sets CHATWAIT_REQUIRE_JQ=1 (in
 * .ci/run, which installs jq), so there a missing jq fails instead of skipping the example.
 */
const hasJq = spawnSync('jq', ['--version']).status === 0;
if (!hasJq) {
  const message = 'the README example piping into jq needs jq, which is not installed';
  if (process.env.CHATWAIT_REQUIRE_JQ === '1') throw new Error(`${message} (CHATWAIT_REQUIRE_JQ=1)`);
  console.warn(`\n*** SKIPPED: ${message}. ***\n`);
}

describe('chatwait conversations', () => {
  beforeAll(async () => {
    for (const contextId of ['list-a', 'list-b', 'list-c'])
      await runCli(['ask', ...at(), '--wait', '--context', contextId, `title of ${contextId}, 5 tokens`]);
  });

  it('lists conversations newest first with id, time, turns and title', async () => {
    const { code, stdout } = await runCli(['conversations', ...at(), '--limit', '100']);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    const index = (id: string) => lines.findIndex((line) => line.startsWith(`${id} `));
    expect(index('list-c')).toBeLessThan(index('list-b'));
    expect(index('list-b')).toBeLessThan(index('list-a'));
    expect(lines[index('list-a')]).toMatch(/^list-a +\d{4}-\d\d-\d\d \d\d:\d\d +1 turn +title of list-a, 5 tokens$/);
  });

  it('prints the API page as JSON, pages with --limit and --cursor, and follows every page with --all', async () => {
    const api = (await getJson(`${server.url}/api/v1/conversations?limit=100`)).body;
    const json = await runCli(['conversations', ...at(), '--json', '-n', '100']);
    expect(JSON.parse(json.stdout)).toEqual(api);
    const page = await runCli(['conversations', ...at(), '--limit', '1']);
    expect(page.stdout.trimEnd().split('\n')).toHaveLength(1);
    const cursor = /--cursor (\S+)/.exec(page.stderr)![1]!;
    const next = await runCli(['conversations', ...at(), '--limit', '1', '--cursor', cursor]);
    expect(next.stdout.split(' ')[0]).toBe(api.conversations[1].context_id);
    const all = await runCli(['conversations', ...at(), '--all', '--limit', '2', '--json']);
    expect(JSON.parse(all.stdout)).toEqual({ conversations: api.conversations, next_cursor: null });
    expect((await runCli(['conversations', ...at(), '--limit', '0'])).code).toBe(2);
  });
});

describe('chatwait health and smoke', () => {
  let broken: TestServer;
  beforeAll(async () => {
    // A server whose model provider is down.
    broken = await startTestServer({
      LLM_PROVIDER: 'openai',
      OPENAI_BASE_URL: `http://127.0.0.1:${await closedPort()}/v1`,
      UPSTREAM_MAX_RETRIES: '0',
    });
  });
  afterAll(() => broken.close());

  it('health exits 0 for a healthy, ready server and 1 for a degraded one', async () => {
    const good = await runCli(['health', ...at()]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/^health +healthy .*model demo\/chatwait-demo/m);
    expect(good.stdout).toMatch(/^ready +ready$/m);
    const bad = await runCli(['health', ...at(broken.url)]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^health +degraded/m);
    expect(bad.stdout).toMatch(/^ {2}model +error/m);
    const json = await runCli(['health', ...at(broken.url), '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ health: { status: 'degraded' }, live: { status: 'alive' } });
    expect((await runCli(['health', ...at(`http://127.0.0.1:${await closedPort()}`)])).code).toBe(3);
  });

  it('smoke passes every check against a good server and cleans up after itself', async () => {
    const { code, stdout } = await runCli(['smoke', ...at()]);
    expect(code, stdout).toBe(0);
    const results = stdout.split('\n').filter((line) => /^(ok|FAIL)/.test(line));
    expect(results.length).toBeGreaterThanOrEqual(11);
    expect(results.every((line) => line.startsWith('ok'))).toBe(true);
    expect(stdout).toContain('resume with Last-Event-ID');
    const listed = (await getJson(`${server.url}/api/v1/conversations?limit=100`)).body.conversations;
    expect(listed.filter((conversation: { context_id: string }) => conversation.context_id.startsWith('smoke-'))).toEqual([]);
  });

  it('smoke fails against a server whose model is down, one that skips a token, and a wrong address', async () => {
    const down = await runCli(['smoke', ...at(broken.url)]);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^FAIL health: status is degraded: model/m);
    expect(down.stdout).toMatch(/^FAIL wait: UPSTREAM_ERROR/m);
    expect(down.stdout).toMatch(/^ok {3}error format/m);
    const proxy = await startTamperingProxy(server.url, { dropTokenIndex: 1 });
    try {
      const skipping = await runCli(['smoke', ...at(proxy.url)]);
      expect(skipping.code).toBe(1);
      expect(skipping.stdout).toMatch(/^FAIL streaming: event id \S+\/2 follows position 0: an event was skipped or repeated$/m);
    } finally {
      await proxy.close();
    }
    const nowhere = await runCli(['smoke', ...at(`http://127.0.0.1:${await closedPort()}`)]);
    expect(nowhere.code).toBe(3);
    expect(nowhere.stdout).toMatch(/^FAIL health: Cannot reach the server/m);
  });
});

describe('chatwait against a server with API keys', () => {
  let keyed: TestServer;
  beforeAll(async () => {
    keyed = await startTestServer({ API_KEYS: 'cli-test-key-one,cli-test-key-two' });
  });
  afterAll(() => keyed.close());

  it('sends --api-key or CHATWAIT_API_KEY as a bearer token, and explains a 401', async () => {
    const refused = await runCli(['ask', ...at(keyed.url), 'hello']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('UNAUTHORIZED');
    expect(refused.stderr).toContain('--api-key or CHATWAIT_API_KEY');
    const withFlag = await runCli(['ask', ...at(keyed.url), '--api-key', 'cli-test-key-one', '--context', 'keyed', 'hello, 5 tokens']);
    expect(withFlag.code).toBe(0);
    const fromEnv = await runCli(['conversations', '--json'], { env: { CHATWAIT_URL: keyed.url, CHATWAIT_API_KEY: 'cli-test-key-one' } });
    expect(JSON.parse(fromEnv.stdout).conversations.map((conversation: { context_id: string }) => conversation.context_id)).toEqual([
      'keyed',
    ]);
    const otherKey = await runCli(['conversations', '--json', ...at(keyed.url), '--api-key', 'cli-test-key-two']);
    expect(JSON.parse(otherKey.stdout).conversations).toEqual([]);
    expect((await runCli(['health', ...at(keyed.url)])).code).toBe(0);
    expect((await runCli(['smoke', ...at(keyed.url), '--api-key', 'cli-test-key-two'])).code).toBe(0);
  });
});

describe('the README', () => {
  it("runs its chatwait examples as written (all but the interactive chat and other servers')", async () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Terminal client'), readme.indexOf('\n## ', readme.indexOf('## Terminal client') + 1));
    const lines = [...section.matchAll(/```bash\n([\s\S]*?)```/g)]
      .flatMap((block) => block[1]!.split('\n'))
      .filter((line) => line.includes('npx chatwait ') && !line.includes('npx chatwait chat') && !line.startsWith('CHATWAIT_URL='));
    const piped = lines.filter((line) => line.includes('| jq'));
    expect(piped).toHaveLength(1);
    const runnable = hasJq ? lines : lines.filter((line) => !piped.includes(line));
    expect(runnable.length).toBeGreaterThanOrEqual(hasJq ? 9 : 8);
    for (const line of runnable) {
      const command = line.replaceAll('npx chatwait', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_MAIN)}`);
      // pipefail: a chatwait that fails before a pipe fails the example.
      const { code, stdout, stderr } = await runCli(['-c', `set -o pipefail; ${command}`], {
        env: { CHATWAIT_URL: server.url },
        executable: 'bash',
      });
      expect(code, `${line}\n${stderr}`).toBe(0);
      expect(stdout, line).not.toBe('');
      // jq -r prints the tokens one per line.
      if (piped.includes(line)) expect(stdout.split('\n').length, stdout).toBeGreaterThan(3);
    }
    // Ten client processes one after another: about 25 s on a busy 2-core machine.
  }, 120_000);
});

describe('chatwait help and packaging', () => {
  it('has --help for every command, without colours off a terminal', async () => {
    for (const command of ['chat', 'ask', 'conversations', 'health', 'smoke']) {
      const { code, stdout } = await runCli([command, '--help']);
      expect(code).toBe(0);
      expect(stdout).toMatch(new RegExp(`^Usage: chatwait ${command} `));
      expect(stdout).toContain('--api-key');
    }
    const main = await runCli(['--help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toContain('Exit codes');
    expect(main.stdout).not.toMatch(SGR);
  });

  it('is the package bin, runnable as bin/chatwait.mjs', async () => {
    const packageJson = JSON.parse(readFileSync(resolve(import.meta.dirname, '../package.json'), 'utf8'));
    expect(packageJson.bin).toEqual({ chatwait: 'bin/chatwait.mjs' });
    const { code, stdout } = await runCli(['--version'], { script: resolve(import.meta.dirname, '..', packageJson.bin.chatwait) });
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(packageJson.version);
  });
});
