import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

/** A proxy in front of a server that can misbehave on purpose, as networks and broken servers do. */
export interface CuttingProxy {
  url: string;
  /** The request heads that went through (TCP proxy: everything clients sent, as text). */
  sent(): string;
  /** Destroys every open connection (both sides), as a network cut or a proxy restart would. */
  cut(): number;
  /** While blocked, new connections are dropped at once (TCP proxy only), as during an outage. */
  blocked: boolean;
  close(): Promise<void>;
}

/** A TCP proxy that can also hang, as a stalled server (SIGSTOPped, or a black-holed network) does. */
export interface TcpProxy extends CuttingProxy {
  /**
   * While hung, connections are accepted but nothing passes either way (bytes are held, not dropped):
   * clients wait as on a server that stopped answering. Set it back to false and what was held flows on.
   */
  hung: boolean;
}

/** A plain TCP proxy to `target` (http://host:port). */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<[net.Socket, net.Socket]>();
  let sent = '';
  let hung = false;
  let held: Array<() => void> = [];
  /** Forwards `from` to `to` with backpressure, holding everything while the proxy hangs. */
  const relay = (from: net.Socket, to: net.Socket) => {
    const pass = (send: () => void) => (hung ? held.push(send) : send());
    from.on('data', (chunk: Buffer) =>
      pass(() => {
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      }),
    );
    from.on('end', () => pass(() => to.end()));
  };
  const server = net.createServer((client) => {
    if (proxy.blocked) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(port), hostname);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.on('data', (chunk: Buffer) => (sent += chunk.toString('latin1')));
    relay(client, upstream);
    relay(upstream, client);
    const forget = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget).on('close', forget);
    upstream.on('error', forget).on('close', forget);
  });
  const proxy = await listen(
    server,
    () => sent,
    () => {
      const count = pairs.size;
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return count;
    },
  );
  return Object.defineProperty(proxy, 'hung', {
    enumerable: true,
    get: () => hung,
    set: (value: boolean) => {
      hung = value;
      if (hung) return;
      const release = held;
      held = [];
      for (const send of release) send();
    },
  }) as TcpProxy;
}

/** Options of the tampering proxy. */
export interface TamperOptions {
  /** Leaves out the SSE event of this token_index from every stream (a server that skips a token). */
  dropTokenIndex?: number;
  /** Sends the SSE event of this token_index twice (a server that repeats itself). */
  repeatTokenIndex?: number;
  /** Never forwards nor answers `POST …/cancel` (a cancel that hangs). */
  holdCancels?: boolean;
}

/** An HTTP proxy to `target` that tampers with what passes, as told. */
export async function startTamperingProxy(target: string, options: TamperOptions): Promise<CuttingProxy> {
  const { hostname, port } = new URL(target);
  let sent = '';
  const server = http.createServer((request, response) => {
    sent += `${request.method} ${request.url}\n${Object.entries(request.headers)
      .map(([name, value]) => `${name}: ${String(value)}`)
      .join('\n')}\n\n`;
    if (options.holdCancels && request.method === 'POST' && request.url?.endsWith('/cancel')) return;
    const upstreamRequest = http.request(
      { host: hostname, port, method: request.method, path: request.url, headers: request.headers, agent: false },
      (upstream) => {
        response.writeHead(upstream.statusCode ?? 502, upstream.headers);
        if (
          (options.dropTokenIndex === undefined && options.repeatTokenIndex === undefined) ||
          !String(upstream.headers['content-type']).startsWith('text/event-stream')
        ) {
          upstream.pipe(response);
          return;
        }
        let buffer = '';
        upstream.setEncoding('utf8');
        upstream.on('data', (text: string) => {
          buffer += text;
          const blocks = buffer.split('\n\n');
          buffer = blocks.pop()!;
          for (const block of blocks) {
            if (block.includes(`"token_index":${options.dropTokenIndex},`)) continue;
            response.write(`${block}\n\n`);
            if (block.includes(`"token_index":${options.repeatTokenIndex},`)) response.write(`${block}\n\n`);
          }
        });
        upstream.on('end', () => response.end(buffer));
      },
    );
    upstreamRequest.on('error', () => response.destroy());
    // A client that leaves (or is cut) takes its upstream connection with it, as a real proxy's would.
    response.on('close', () => upstreamRequest.destroy());
    request.pipe(upstreamRequest);
  });
  return listen(server, () => sent);
}

/** Listens on a free loopback port; `cut` (by default: destroy every connection open through it) ends what passes. */
async function listen(server: net.Server, sent: () => string, cut: () => number = destroyingConnections(server)): Promise<CuttingProxy> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    cut,
    blocked: false,
    close: async () => {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Where, inside an SSE event's block, a connection is cut (lines counted among the block's fields, comments and `retry:` aside). */
export type InEventCut = 'inside-first-line' | 'after-first-line' | 'inside-second-line';

/** Options of the proxy that cuts streams inside an event. */
export interface InEventCutOptions {
  /** For the n-th event stream (from 0): after how many whole events to cut, and where in the next one; undefined: never cut it. */
  cutFor(stream: number): { afterEvents: number; at: InEventCut } | undefined;
  /** Replaces the value of the stream's `retry:` field, so clients reconnect at once (as a server configured so would tell them). */
  retryMs?: number;
}

/**
 * An HTTP proxy that cuts SSE responses inside an event, as a network can: it forwards whole events,
 * then part of the next one (up to the cut), then closes the connection. Counts the cuts it made.
 */
export async function startInEventCuttingProxy(target: string, options: InEventCutOptions): Promise<CuttingProxy & { cuts: () => number }> {
  const { hostname, port } = new URL(target);
  let streams = 0;
  let cuts = 0;
  const server = http.createServer((request, response) => {
    const upstreamRequest = http.request(
      { host: hostname, port, method: request.method, path: request.url, headers: request.headers, agent: false },
      (upstream) => {
        response.writeHead(upstream.statusCode ?? 502, upstream.headers);
        if (!String(upstream.headers['content-type']).startsWith('text/event-stream')) {
          upstream.pipe(response);
          return;
        }
        const plan = options.cutFor(streams++);
        let forwarded = 0;
        let buffer = '';
        let cut = false;
        upstream.setEncoding('utf8');
        upstream.on('data', (text: string) => {
          if (cut || response.destroyed) return;
          buffer += options.retryMs === undefined ? text : text.replace(/^retry: \d+$/m, `retry: ${options.retryMs}`);
          const blocks = buffer.split('\n\n');
          buffer = blocks.pop()!;
          for (const block of blocks) {
            const lines = block.split('\n');
            const fields = lines
              .map((line, index) => ({ line, index }))
              .filter(({ line }) => !line.startsWith(':') && !line.startsWith('retry:'));
            if (plan && fields.length >= 2 && forwarded === plan.afterEvents) {
              // The text of the block up to the cut: the lines before the field, then part (or all) of the field's line.
              const field = plan.at === 'inside-second-line' ? fields[1]! : fields[0]!;
              const before = lines
                .slice(0, field.index)
                .map((line) => `${line}\n`)
                .join('');
              const cutText =
                plan.at === 'after-first-line'
                  ? `${before}${field.line}\n`
                  : `${before}${field.line.slice(0, Math.ceil(field.line.length / 2))}`;
              cuts++;
              cut = true;
              upstreamRequest.destroy();
              response.write(cutText, () => response.socket?.end());
              return;
            }
            if (fields.length > 0) forwarded++;
            response.write(`${block}\n\n`);
          }
        });
        upstream.on('end', () => {
          if (!cut && !response.destroyed) response.end(buffer);
        });
      },
    );
    upstreamRequest.on('error', () => response.destroy());
    response.on('close', () => upstreamRequest.destroy());
    request.pipe(upstreamRequest);
  });
  const proxy = await listen(server, () => '');
  return { ...proxy, cuts: () => cuts };
}

/** Tracks a server's connections; the returned function destroys those open and says how many there were. */
function destroyingConnections(server: net.Server): () => number {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return () => {
    const count = sockets.size;
    for (const socket of sockets) socket.destroy();
    return count;
  };
}
