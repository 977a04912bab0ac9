// Measures what a flood of half-sent requests costs the server, and how long SIGTERM takes with a
// stalled upload (issue 11, points 1 and 2). Loopback only, bounded counts and times.
//
//   node bench/connection-flood.mjs [--main dist/main.js] [--connections 2000] [--addresses 1] [--mode nope|headers] [--max-open-files N]
//
// Starts the compiled server (API_KEYS set, default limits), opens --connections sockets from
// --addresses loopback addresses (127.0.1.1, 127.0.1.2, …), each sending the headers of
// `POST /nope` with Content-Length: 1000 and 10 bytes of body (--mode headers: half the headers
// of `POST /api/v1/chat/wait`, never finished), then stalls. Reports the file
// descriptors the server holds (/proc/<pid>/fd), how many flood sockets it left open, whether a
// keyed client on 127.0.0.9 is served, and, after SIGTERM with one stalled upload, an idle
// keep-alive connection and an open SSE stream, how long the process takes to exit. --max-open-files
// runs the server under `ulimit -n N`, to see what happens when the flood reaches the limit.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    main: { type: 'string', default: resolve(import.meta.dirname, '../dist/main.js') },
    connections: { type: 'string', default: '2000' },
    addresses: { type: 'string', default: '1' },
    drain: { type: 'string', default: '2' },
    mode: { type: 'string', default: 'nope' },
    'max-open-files': { type: 'string' },
  },
});
const total = Math.min(Number(values.connections), 20_000);
const addresses = Math.max(1, Math.min(Number(values.addresses), 200));
const KEY = 'bench-key-0123456789';
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

const limit = values['max-open-files'];
const [command, args] = limit
  ? ['sh', ['-c', `ulimit -n ${Number(limit)} && exec "$0" "$@"`, process.execPath, values.main]]
  : [process.execPath, [values.main]];
const child = spawn(command, args, {
  env: {
    PATH: process.env.PATH,
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: 'memory',
    LOG_LEVEL: 'info',
    API_KEYS: KEY,
    SHUTDOWN_DRAIN_SECONDS: values.drain,
    DEMO_TOKENS_PER_SECOND: '20',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
child.stdout.on('data', (chunk) => (output += chunk));
child.stderr.on('data', (chunk) => (output += chunk));
const exited = new Promise((done) => child.on('exit', (code) => done(code)));
const deadline = Date.now() + 60_000;
while (!/listening on http:\/\/[^:]+:(\d+)/.test(output)) {
  if (Date.now() > deadline) throw new Error(`the server did not start: ${output}`);
  await sleep(50);
}
const port = Number(/listening on http:\/\/[^:]+:(\d+)/.exec(output)[1]);
const descriptors = () => readdirSync(`/proc/${child.pid}/fd`).length;
console.log(`server ${values.main} pid ${child.pid} port ${port}; descriptors at rest: ${descriptors()}`);

/** Opens a socket from `localAddress` and writes `text`; resolves once connected (or failed). */
function openSocket(localAddress, text) {
  return new Promise((done) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress });
    socket.on('error', () => {});
    socket.resume();
    socket.once('connect', () => {
      socket.write(text);
      done(socket);
    });
    socket.once('close', () => done(socket));
    setTimeout(() => done(socket), 5000).unref();
  });
}

const half =
  values.mode === 'headers'
    ? 'POST /api/v1/chat/wait HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n'
    : 'POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"message"';
const flood = [];
const started = Date.now();
for (let index = 0; index < total; index += 100) {
  const batch = [];
  for (let offset = index; offset < Math.min(total, index + 100); offset++)
    batch.push(openSocket(`127.0.1.${1 + (offset % addresses)}`, half));
  flood.push(...(await Promise.all(batch)));
}
await sleep(1000);
const open = flood.filter((socket) => !socket.destroyed && socket.readyState === 'open').length;
console.log(
  `flood (${values.mode}): ${total} half-sent requests from ${addresses} address(es) in ${Date.now() - started} ms; still open after 1 s: ${open}; server descriptors: ${descriptors()}`,
);

/** A keyed request from 127.0.0.9: its status, or the error. */
async function keyedRequest() {
  const socket = await openSocket(
    '127.0.0.9',
    `GET /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`,
  );
  const answer = await new Promise((done) => {
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    socket.resume();
    socket.on('close', () => done(text));
    setTimeout(() => done(text || 'no answer within 5 s'), 5000).unref();
  });
  socket.destroy();
  return answer.split('\r\n')[0] || 'connection closed without an answer';
}
console.log(`keyed client during the flood: ${await keyedRequest()}`);
for (const socket of flood) socket.destroy();
await sleep(500);

// SIGTERM with a stalled upload, an idle keep-alive connection and an open SSE stream.
const stalled = await openSocket(
  '127.0.0.10',
  `POST /api/v1/chat/wait HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"message"`,
);
const idle = await openSocket('127.0.0.11', `GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n`);
const sse = await openSocket(
  '127.0.0.12',
  `GET /api/v1/chat/streaming?message=answer%20in%20100000%20tokens HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\n\r\n`,
);
await sleep(500);
const signalled = Date.now();
child.kill('SIGTERM');
const code = await Promise.race([exited, sleep(60_000).then(() => 'still running after 60 s')]);
console.log(
  `SIGTERM (SHUTDOWN_DRAIN_SECONDS=${values.drain}) with a stalled upload, an idle keep-alive and an SSE stream: exit ${code} after ${Date.now() - signalled} ms`,
);
for (const socket of [stalled, idle, sse]) socket.destroy();
child.kill('SIGKILL');
process.exit(0);
