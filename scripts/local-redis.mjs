// A throwaway Redis on a free loopback port, from Debian's `redis-server`: for the tests (once per run)
// and the bench. Nothing is persisted (no RDB snapshots, no append-only file): the tests need a Redis
// that answers, not one that survives a restart, and `stop` removes its folder.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './local-postgres.mjs';

/** Where `redis-server` is (Debian's package puts it in /usr/bin), or undefined. */
export function findRedisServer() {
  return ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path));
}

/** Whether something answers PING with PONG at this port. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = createConnection(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(500, () => socket.destroy());
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) socket.end();
    });
    socket.on('close', () => resolve(reply.startsWith('+PONG')));
    socket.on('error', () => resolve(false));
  });
}

/**
 * Starts a server; resolves to `{ url, stop() }` once it answers PING. `options.port` starts it on that
 * port (a test restarting "the same" Redis, empty), `options.args` adds arguments.
 */
export async function startLocalRedis(server = findRedisServer(), options = {}) {
  if (!server) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-redis-'));
  const port = options.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', directory, '--save', '', '--appendonly', 'no'];
  args.push('--daemonize', 'no', '--logfile', join(directory, 'redis.log'), ...(options.args ?? []));
  const child = spawn(server, args, { stdio: 'ignore' });
  let exited = false;
  child.on('exit', () => (exited = true));
  const started = Date.now();
  while (!(await ping(port))) {
    if (exited || Date.now() - started > 10_000) {
      child.kill('SIGKILL');
      rmSync(directory, { recursive: true, force: true });
      throw new Error(`redis-server did not start on port ${port} (see its log in ${directory})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    stop: () => {
      if (!exited) child.kill('SIGKILL');
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
