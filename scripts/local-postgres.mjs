// A throwaway PostgreSQL cluster on a free loopback port, from Debian's binaries: for the tests (once
// per run) and for `npm run bench -- --store=postgres`. `initdb` into a temporary folder, then
// `pg_ctl start`, with durability off (neither needs a crash-safe disk). PostgreSQL refuses to run as
// root, so as root the cluster belongs to the `postgres` user Debian's package creates. Trust
// authentication on loopback only: nothing but this machine can reach it, and it is gone afterwards.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's PostgreSQL binaries are (`/usr/lib/postgresql/<version>/bin`, the newest), or undefined. */
export function findPostgresBin() {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** A free loopback TCP port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a cluster; resolves to `{ adminUrl, halt(), resume(), stop() }`. */
export async function startLocalPostgres(bin) {
  const asRoot = process.getuid?.() === 0;
  // As root, under /tmp itself: a private TMPDIR would keep the postgres user out of its own folder.
  const directory = mkdtempSync(join(asRoot ? '/tmp' : tmpdir(), 'chatwait-pg-'));
  const data = join(directory, 'data');
  const command = (program, args) =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, program), ...args]] : [join(bin, program), args];
  const run = (program, args) => {
    const [file, fileArgs] = command(program, args);
    return execFileSync(file, fileArgs, { stdio: 'pipe', encoding: 'utf8' });
  };
  chmodSync(directory, 0o777);
  run('initdb', ['-D', data, '-U', 'chatwait', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${directory}`,
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c max_connections=300',
  ].join(' ');
  const start = () => run('pg_ctl', ['-D', data, '-o', options, '-l', join(directory, 'server.log'), '-w', '-t', '60', 'start']);
  const halt = (mode) => {
    const [file, fileArgs] = command('pg_ctl', ['-D', data, '-m', mode, '-w', 'stop']);
    spawnSync(file, fileArgs, { stdio: 'ignore' });
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
