// nginx in front of ChatWait processes on this machine, with the repository's own deploy/nginx.conf:
// for the multi-instance tests and the bench. Debian's nginx runs in the foreground (`daemon off`) with
// a temporary prefix holding its pid file, logs and temporary files, so it needs nothing of /etc/nginx
// or /var. deploy/nginx.conf is rendered for this machine (its upstream `server` lines and its `listen`
// line replaced, as the file's header says) and included in a minimal main configuration.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './local-postgres.mjs';

/** The repository's nginx configuration. */
export const NGINX_CONFIG = fileURLToPath(new URL('../deploy/nginx.conf', import.meta.url));

/** Where nginx is (Debian's /usr/sbin/nginx, else the first on PATH), or undefined when it is not installed. */
export function findNginx() {
  const candidates = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(delimiter).map((folder) => join(folder, 'nginx'))];
  return candidates.find((path) => path !== 'nginx' && existsSync(path));
}

/**
 * deploy/nginx.conf for this machine: the `server` lines of `upstream chatwait` become one per
 * address in `upstreams` (`host:port`), and the server's `listen` lines become one `listen <listen>`.
 * Throws when the file no longer has what is replaced, so the tests cannot run a half-rendered file.
 */
export function renderNginxConfig(text, { upstreams, listen }) {
  if (upstreams.length === 0) throw new Error('renderNginxConfig: no upstream address');
  const output = [];
  let inUpstream = false;
  let serversReplaced = false;
  let listenReplaced = false;
  for (const line of text.split('\n')) {
    if (/^\s*upstream\s+chatwait\s*\{/.test(line)) {
      inUpstream = true;
    } else if (inUpstream && /^\s*\}/.test(line)) {
      inUpstream = false;
    } else if (inUpstream && /^\s*server\s+[^;]+;/.test(line)) {
      if (!serversReplaced) {
        const indent = /^\s*/.exec(line)[0];
        for (const address of upstreams) output.push(`${indent}server ${address};`);
        serversReplaced = true;
      }
      continue;
    } else if (!inUpstream && /^\s*listen\s+[^;]+;/.test(line)) {
      if (!listenReplaced) output.push(`${/^\s*/.exec(line)[0]}listen ${listen};`);
      listenReplaced = true;
      continue;
    }
    output.push(line);
  }
  if (!serversReplaced) throw new Error('renderNginxConfig: no `server` line inside `upstream chatwait { }`');
  if (!listenReplaced) throw new Error('renderNginxConfig: no `listen` line');
  return output.join('\n');
}

/** The main configuration that includes the rendered file: foreground, one worker, everything under `directory`. */
function mainConfig(directory) {
  const temporary = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `  ${kind}_temp_path ${join(directory, kind)};`)
    .join('\n');
  return `daemon off;
worker_processes 1;
pid ${join(directory, 'nginx.pid')};
error_log ${join(directory, 'error.log')} notice;
events { worker_connections 4096; }
http {
  access_log ${join(directory, 'access.log')};
${temporary}
  include ${join(directory, 'chatwait.conf')};
}
`;
}

/**
 * Whether OUR nginx answers on 127.0.0.1:`port`: the port accepts, nginx's pid file (written once its
 * sockets are bound) names our process, and its error log has no bind() failure. Another process that
 * took the free port first (the race between finding a port and nginx binding it) does not count.
 */
function ours(port, child, directory) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      const pidFile = join(directory, 'nginx.pid');
      const errorLog = join(directory, 'error.log');
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : undefined;
      const bindFailed = existsSync(errorLog) && /bind\(\)[^\n]*failed/.test(readFileSync(errorLog, 'utf8'));
      resolve(pid === child.pid && !bindFailed);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Stops nginx: SIGQUIT (graceful) to the master, then SIGKILL to its process group after `graceMs`. */
async function stopNginx(child, exited, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGQUIT');
  const timer = new Promise((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
  if ((await Promise.race([exited, timer])) !== 'timeout') return;
  killGroup(child);
  await exited;
}

/** SIGKILL to nginx's whole process group (master and workers: it was started detached, as the group's leader). */
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** Starts nginx once on a free port; rejects with its error log when it exits before listening. */
async function startOnce(nginx, directory, template, upstreams) {
  const port = await freePort();
  writeFileSync(join(directory, 'chatwait.conf'), renderNginxConfig(template, { upstreams, listen: `127.0.0.1:${port}` }));
  writeFileSync(join(directory, 'nginx.conf'), mainConfig(directory));
  const errorLog = join(directory, 'error.log');
  // A previous attempt's log and pid file must not be read as this one's.
  for (const name of ['error.log', 'nginx.pid']) rmSync(join(directory, name), { force: true });
  // Its own process group, so the workers can be killed with the master even if the master dies first.
  const child = spawn(nginx, ['-p', directory, '-e', errorLog, '-c', join(directory, 'nginx.conf')], { stdio: 'ignore', detached: true });
  let exitCode;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve((exitCode = code ?? signal)));
    // Not started at all (no such file): there is no exit to wait for.
    child.once('error', (error) => resolve((exitCode = error.code)));
  });
  const deadline = Date.now() + 15_000;
  while (exitCode === undefined && Date.now() < deadline) {
    if (await ours(port, child, directory)) return { child, port, exited };
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  killGroup(child);
  await exited;
  const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
  throw Object.assign(new Error(`nginx did not start (exit ${exitCode ?? 'timeout'}): ${log}`), { addressInUse: /in use/.test(log) });
}

/**
 * Starts nginx with deploy/nginx.conf (or `config`) in front of `upstreams` (`host:port` each), on a
 * free loopback port. Resolves to `{ url, port, errorLog(), accessLog(), stop() }`.
 */
export async function startLocalNginx(nginx, { upstreams, config = NGINX_CONFIG }) {
  const asRoot = process.getuid?.() === 0;
  // As root, nginx's workers run as `nobody`: their temporary files need a folder they can reach.
  const directory = mkdtempSync(join(asRoot ? '/tmp' : tmpdir(), 'chatwait-nginx-'));
  if (asRoot) chmodSync(directory, 0o755);
  const template = readFileSync(config, 'utf8');
  let started;
  for (let attempt = 1; started === undefined; attempt++) {
    try {
      started = await startOnce(nginx, directory, template, upstreams);
    } catch (error) {
      // Another process may take the free port between its discovery and nginx's bind: try another.
      if (!error.addressInUse || attempt === 3) {
        rmSync(directory, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const { child, port, exited } = started;
  // A test run that exits without stop() (a crash, a timeout) leaves no nginx behind.
  const onExit = () => killGroup(child);
  process.once('exit', onExit);
  const readLog = (name) => {
    const path = join(directory, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    errorLog: () => readLog('error.log'),
    accessLog: () => readLog('access.log'),
    stop: async () => {
      try {
        await stopNginx(child, exited);
      } finally {
        process.removeListener('exit', onExit);
        rmSync(directory, { recursive: true, force: true });
      }
    },
  };
}
