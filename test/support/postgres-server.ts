import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PostgreSQL server the tests own: where it listens, and how to stop it. */
export interface TestPostgres {
  /** A URL of its `postgres` database, for creating each test file's own. */
  adminUrl: string;
  /** Stops the server (fast shutdown: open connections are cut), keeping its data, to start it again. */
  halt(): void;
  /** Starts it again, on the same port, after `halt`. */
  resume(): void;
  /** Stops it for good and removes its files. */
  stop(): void;
}

/**
 * Where Debian's PostgreSQL binaries are (`/usr/lib/postgresql/<version>/bin`, the newest), or
 * undefined when the package is not installed.
 */
export function findPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** A free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a throwaway PostgreSQL cluster on a free loopback port: `initdb` into a temporary folder, then
 * `pg_ctl start`, with durability off (tests never need a crash-safe disk). PostgreSQL refuses to run as
 * root, so as root the cluster belongs to the `postgres` user Debian's package creates. Trust
 * authentication on loopback only: nothing but this machine can reach it, and it is gone after the run.
 */
export async function startTestPostgres(bin: string): Promise<TestPostgres> {
  const asRoot = process.getuid?.() === 0;
  // As root, under /tmp itself: the run's TMPDIR is private to root, and the postgres user must reach its folder.
  const directory = mkdtempSync(join(asRoot ? '/tmp' : tmpdir(), 'chatwait-pg-'));
  const data = join(directory, 'data');
  const run = (command: string, args: string[]) => {
    const file = join(bin, command);
    const [program, programArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
    return execFileSync(program, programArgs, { stdio: 'pipe', encoding: 'utf8' });
  };
  // The postgres user must be able to reach its folder (mkdtemp makes it 0700, owned by root).
  chmodSync(directory, 0o777);
  run('initdb', ['-D', data, '-U', 'chatwait', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-c listen_addresses=127.0.0.1`,
    `-c unix_socket_directories=${directory}`,
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c max_connections=300',
  ].join(' ');
  const start = () => run('pg_ctl', ['-D', data, '-o', options, '-l', join(directory, 'server.log'), '-w', '-t', '60', 'start']);
  const halt = (mode: 'fast' | 'immediate') => {
    const args = ['-D', data, '-m', mode, '-w', 'stop'];
    spawnSync(asRoot ? 'runuser' : join(bin, 'pg_ctl'), asRoot ? ['-u', 'postgres', '--', join(bin, 'pg_ctl'), ...args] : args, { stdio: 'ignore' });
  };
  start();
  return {
    adminUrl: `postgres://chatwait@127.0.0.1:${port}/postgres`,
    halt: () => halt('fast'),
    resume: start,
    stop: () => {
      halt('immediate');
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
