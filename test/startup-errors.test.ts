import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';

const servers: SpawnedServer[] = [];
const blockers: net.Server[] = [];
afterAll(() => {
  for (const server of servers) server.child.kill('SIGKILL');
  for (const blocker of blockers) blocker.close();
});

const folder = mkdtempSync(join(tmpdir(), 'chatwait-startup-'));

/** Starts the compiled server with `env` and resolves with its exit code and its stderr once it exits. */
async function startFailing(env: Record<string, string>) {
  const server = spawnServer({ LOG_LEVEL: 'warn', ...env });
  servers.push(server);
  const code = await server.exited;
  return { code, stderr: server.output().stderr };
}

/** Exit code 1 and exactly one line on stderr, with no stack frame, naming `variable`. */
function expectOneLine({ code, stderr }: { code: number | null; stderr: string }, variable: string, words: RegExp) {
  expect(code).toBe(1);
  expect(stderr.trimEnd().split('\n'), stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr).toContain(variable);
  expect(stderr).toMatch(words);
}

describe.concurrent('a failure at start-up is one clear line', () => {
  it('names PORT when the port is in use', async () => {
    const blocker = net.createServer();
    blockers.push(blocker);
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const { port } = blocker.address() as net.AddressInfo;
    expectOneLine(await startFailing({ PORT: String(port) }), 'PORT', /already in use/);
  });

  it('names HOST when it does not resolve', async () => {
    expectOneLine(await startFailing({ HOST: 'no-such-host.invalid' }), 'HOST', /does not resolve/);
  });

  it('says a corrupt SQLite file is not a database', async () => {
    const path = join(folder, 'corrupt.db');
    writeFileSync(path, 'this is not a SQLite database, just some text that is long enough to look like a header\n'.repeat(20));
    expectOneLine(await startFailing({ DATABASE_URL: `sqlite:${path}` }), 'DATABASE_URL', /file is not a database/);
  });

  it('refuses a DATABASE_URL that names a directory', async () => {
    expectOneLine(await startFailing({ DATABASE_URL: `sqlite:${folder}` }), 'DATABASE_URL', /is a directory/);
  });

  it('refuses a DATABASE_URL under a regular file', async () => {
    const file = join(folder, 'plain-file');
    writeFileSync(file, 'text');
    expectOneLine(await startFailing({ DATABASE_URL: `sqlite:${file}/chat.db` }), 'DATABASE_URL', /is a file, not a directory/);
    expectOneLine(await startFailing({ DATABASE_URL: `sqlite:${file}/deeper/chat.db` }), 'DATABASE_URL', /is a file, not a directory/);
  });

  it('says a PostgreSQL it cannot reach cannot be opened, naming it without its password', async () => {
    const failure = await startFailing({ DATABASE_URL: 'postgres://chat:hunter22@127.0.0.1:1/chat' });
    expectOneLine(
      failure,
      'DATABASE_URL',
      /Cannot open the database at DATABASE_URL=postgres:\/\/chat:\*\*\*@127\.0\.0\.1:1\/chat: connect ECONNREFUSED/,
    );
    expect(failure.stderr).not.toContain('hunter22');
  });

  it('says a Redis it cannot reach cannot be reached, naming it without its password', async () => {
    const failure = await startFailing({ REDIS_URL: 'redis://:hunter22@127.0.0.1:1/0' });
    expectOneLine(failure, 'REDIS_URL', /Cannot reach Redis at REDIS_URL=redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0: .*ECONNREFUSED/);
    expect(failure.stderr).not.toContain('hunter22');
  });

  it('fails at once on a path under /proc instead of spinning', async () => {
    expectOneLine(await startFailing({ DATABASE_URL: 'sqlite:/proc/chatwait/chat.db' }), 'DATABASE_URL', /cannot be created/);
    expectOneLine(await startFailing({ DATABASE_URL: 'sqlite:/proc/self/fd/1' }), 'DATABASE_URL', /kernel filesystem|not a regular file/);
  });
});
