import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readSse } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { startTestServer, type TestServer } from './support/test-server.js';

// Issue 11, point 1: requests that never finish arriving, unknown routes with bodies, and floods
// of connections, over raw sockets against a real listening server.

const KEY = 'slow-requests-key-1';
const servers: TestServer[] = [];
const processes: SpawnedServer[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const child of processes.splice(0)) child.child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function start(env: Record<string, string>) {
  const server = await startTestServer(env);
  servers.push(server);
  return server;
}

/** A raw connection from `localAddress` that records what it receives and when the server closes it. */
async function connect(url: string, localAddress = '127.0.0.1') {
  const { port } = new URL(url);
  const socket = net.connect({ host: '127.0.0.1', port: Number(port), localAddress });
  sockets.push(socket);
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', () => {});
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    // Refused at once: the close is the answer.
    socket.once('close', () => resolve());
  });
  return { socket, closed, received: () => received, isOpen: () => !socket.destroyed && socket.readyState === 'open' };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('requests that stop arriving', () => {
  it('answers 408 and closes a request whose body stalls, within REQUEST_TIMEOUT_SECONDS', async () => {
    const server = await start({ REQUEST_TIMEOUT_SECONDS: '1' });
    const connection = await connect(server.url);
    connection.socket.write(
      'POST /api/v1/chat/wait HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"message":',
    );
    const answer = await connection.closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ error_code: 'BAD_REQUEST' });
  });

  it('answers 408 and closes a request whose headers stall', async () => {
    const server = await start({ REQUEST_TIMEOUT_SECONDS: '1' });
    const connection = await connect(server.url);
    connection.socket.write('GET /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\n');
    expect(await connection.closed).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('answers an unknown route at once, without waiting for its body, and closes the connection', async () => {
    const server = await start({});
    const connection = await connect(server.url);
    connection.socket.write('POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    // The request timeout is 30 s: an answer within 10 s did not wait for it.
    const answer = await Promise.race([connection.closed, sleep(10_000).then(() => `nothing yet: ${connection.received()}`)]);
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ error_code: 'NOT_FOUND' });
  });

  it("answers a trusted proxy's request early too, but keeps its connection: the rest of the body is read and dropped", async () => {
    // A proxy (nginx) has the whole body and is sending it: a connection closed under it would fail its request with a 502.
    const server = await start({ TRUST_PROXY: '127.0.0.1' });
    const until = async (connection: Awaited<ReturnType<typeof connect>>, text: string) => {
      for (const deadline = Date.now() + 10_000; !connection.received().includes(text) && Date.now() < deadline;) await sleep(20);
      return connection.received();
    };
    const head = 'POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';
    const proxy = await connect(server.url);
    proxy.socket.write(head);
    const answer = await until(proxy, 'NOT_FOUND');
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(answer.toLowerCase()).not.toContain('connection: close');
    proxy.socket.write(`${'x'.repeat(1000)}GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    expect(await until(proxy, '"status":"alive"')).toContain('"status":"alive"');
    expect(proxy.isOpen()).toBe(true);
    // Any other peer is still answered and cut off, its body never waited for.
    const client = await connect(server.url, '127.0.0.2');
    client.socket.write(head);
    expect((await client.closed).toLowerCase()).toContain('connection: close');
  });

  it("closes even a trusted proxy's connection when its early-answered body is chunked or longer than MAX_BODY_BYTES", async () => {
    // Node drains an early-answered body without a cap: only a declared length within the limit is drained.
    const server = await start({ TRUST_PROXY: 'true' });
    for (const framing of ['Content-Length: 10000000000', 'Transfer-Encoding: chunked']) {
      const proxy = await connect(server.url);
      proxy.socket.write(`POST /nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
      if (framing.startsWith('Transfer')) proxy.socket.write('400\r\n' + 'x'.repeat(1024) + '\r\n');
      const answer = await Promise.race([proxy.closed, sleep(10_000).then(() => `still open: ${proxy.received()}`)]);
      expect(answer).toMatch(/^HTTP\/1\.1 404 /);
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(proxy.isOpen()).toBe(false);
    }
  });

  it('does not cut an SSE stream that lasts longer than the request timeout', async () => {
    const server = await start({ REQUEST_TIMEOUT_SECONDS: '0.5', DEMO_TOKENS_PER_SECOND: '40' });
    const result = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('answer in 100 tokens')}`);
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'end', finish_reason: 'stop' });
  });

  it('does not cut a stream whose reader pauses for longer than the request timeout', async () => {
    const server = await start({ REQUEST_TIMEOUT_SECONDS: '0.5', DEMO_TOKENS_PER_SECOND: '40' });
    const connection = await connect(server.url);
    connection.socket.write('GET /api/v1/chat/streaming?message=answer%20in%2080%20tokens HTTP/1.1\r\nHost: localhost\r\n\r\n');
    connection.socket.pause();
    await sleep(2000);
    connection.socket.resume();
    const deadline = Date.now() + 20_000;
    while (!connection.received().includes('"finish_reason":"stop"') && connection.isOpen() && Date.now() < deadline) await sleep(100);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(connection.received()).toContain('"finish_reason":"stop"');
  });
});

describe('connections one client can hold', () => {
  it('closes the oldest unproven connections of an address past MAX_CONNECTIONS_PER_CLIENT, and serves a keyed client on that same address', async () => {
    const server = await start({ MAX_CONNECTIONS_PER_CLIENT: '20', API_KEYS: KEY });
    const flood = [];
    for (let index = 0; index < 30; index++) {
      const connection = await connect(server.url, '127.0.0.2');
      connection.socket.write('POST /nope HTTP/1.1\r\nHost: localhost\r\n');
      flood.push(connection);
    }
    await sleep(500);
    // The newest 20 are held, the oldest 10 were closed to make room.
    expect(flood.map((connection) => connection.isOpen())).toEqual([...Array<boolean>(10).fill(false), ...Array<boolean>(20).fill(true)]);

    // A keyed client on the flood's own address gets in, proves itself, and is served.
    const keyed = await connect(server.url, '127.0.0.2');
    keyed.socket.write(
      `GET /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`,
    );
    expect(await keyed.closed).toMatch(/^HTTP\/1\.1 200 /);
    // The flood reopening does not close a proven connection.
    const kept = await connect(server.url, '127.0.0.2');
    kept.socket.write(`GET /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
    while (!kept.received().includes('\r\n\r\n')) await sleep(20);
    for (let index = 0; index < 30; index++) (await connect(server.url, '127.0.0.2')).socket.write('POST /nope HTTP/1.1\r\n');
    await sleep(300);
    expect(kept.isOpen()).toBe(true);
  });

  it('bounds the connections one address proves without keys at MAX_CONNECTIONS_PER_CLIENT', async () => {
    const server = await start({ MAX_CONNECTIONS_PER_CLIENT: '3' });
    const answers = [];
    for (let index = 0; index < 4; index++) {
      const connection = await connect(server.url);
      connection.socket.write('GET /api/v1/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n');
      while (!connection.received().includes('\r\n\r\n')) await sleep(20);
      answers.push(connection.received());
    }
    expect(answers.slice(0, 3).every((answer) => answer.startsWith('HTTP/1.1 200 '))).toBe(true);
    expect(answers[3]).toMatch(/^HTTP\/1\.1 429 /);
    expect(answers[3]!.toLowerCase()).toContain('connection: close');
  });

  it('starts with TRUST_PROXY naming an IPv4-mapped proxy address, and exempts that proxy', async () => {
    const server = await start({ TRUST_PROXY: '::ffff:127.0.0.4,::ffff:127.0.5.0/120', MAX_CONNECTIONS_PER_CLIENT: '2' });
    const proxied = [];
    for (let index = 0; index < 4; index++) {
      const connection = await connect(server.url, '127.0.0.4');
      connection.socket.write('POST /nope HTTP/1.1\r\nHost: localhost\r\n');
      proxied.push(connection);
    }
    await sleep(300);
    expect(proxied.every((connection) => connection.isOpen())).toBe(true);
  });

  it('keeps a flood of unauthenticated connections from many addresses from locking out a keyed client', async () => {
    // 300 descriptors: without a bound, the flood below takes them all and the keyed client is never accepted.
    const child = spawnServer({ API_KEYS: KEY, MAX_CONNECTIONS_PER_CLIENT: '40', MAX_PENDING_CONNECTIONS: '100' }, { maxOpenFiles: 300 });
    processes.push(child);
    const url = await child.url;
    for (let index = 0; index < 400; index++) {
      const connection = await connect(url, `127.0.2.${1 + (index % 20)}`);
      connection.socket.write('POST /api/v1/chat/wait HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n');
    }
    const keyed = await connect(url, '127.0.3.1');
    keyed.socket.write(
      `GET /api/v1/conversations HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`,
    );
    expect(await keyed.closed).toMatch(/^HTTP\/1\.1 200 /);
  });
});
