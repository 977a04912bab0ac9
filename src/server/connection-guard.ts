import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { BlockList, isIPv6, type Socket } from 'node:net';

/** How many connections the guard lets in, and which peers are proxies (many clients behind one address). */
export interface ConnectionGuardOptions {
  /** Connections one socket address may hold open at once (0: no limit). */
  maxPerClient: number;
  /** Connections, all addresses together, that have not yet carried a request that proved them (0: no limit). */
  maxPending: number;
  /** TRUST_PROXY: peers it trusts are proxies, whose address stands for many clients, so not capped per address. */
  trustProxy: boolean | number | readonly string[];
}

/** What the routes tell the guard about a connection. */
export interface ConnectionGuard {
  /** A request on this connection passed the API key check (or, without keys, arrived whole on a known route). */
  prove(socket: Socket): void;
}

/**
 * Bounds the connections clients can hold, at the socket, before any request is parsed: one address
 * gets at most `maxPerClient` (more are answered 429 and closed), and connections that have not yet
 * proved themselves share a pool of `maxPending`: when it is full, the oldest of them is closed to
 * make room. A flood of idle or half-sent connections, from however many addresses, thus never
 * holds more than that pool, and a keyed client's new connection always gets its turn.
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  const perAddress = new Map<string, number>();
  // A Set iterates in insertion order: its first entry is the oldest connection still pending.
  const pending = new Set<Socket>();
  const isProxy = proxyMatcher(options.trustProxy);

  server.on('connection', (socket: Socket) => {
    const address = normalize(socket.remoteAddress ?? '');
    if (options.maxPerClient > 0 && !isProxy(address)) {
      const count = perAddress.get(address) ?? 0;
      if (count >= options.maxPerClient) {
        refuse(socket, options.maxPerClient);
        return;
      }
      perAddress.set(address, count + 1);
      socket.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left === 0) perAddress.delete(address);
        else perAddress.set(address, left);
      });
    }
    if (options.maxPending > 0) {
      pending.add(socket);
      socket.once('close', () => pending.delete(socket));
      if (pending.size > options.maxPending) {
        const oldest = pending.values().next().value!;
        pending.delete(oldest);
        oldest.destroy();
      }
    }
  });

  return { prove: (socket) => void pending.delete(socket) };
}

/** Answers a connection over its address's cap with a 429 JSON error and closes it, reading nothing from it. */
function refuse(socket: Socket, limit: number): void {
  socket.pause();
  const body = JSON.stringify({
    error_code: 'RATE_LIMITED',
    message: `Too many connections from your address: at most ${limit} at once. Close some and try again.`,
    request_id: randomUUID(),
  });
  socket.end(
    `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
  // A peer that never reads must not keep the socket either.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** Whether a peer address is a proxy TRUST_PROXY trusts: `true` or a hop count trust the direct peer; a list names them. */
function proxyMatcher(trustProxy: boolean | number | readonly string[]): (address: string) => boolean {
  if (trustProxy === true || (typeof trustProxy === 'number' && trustProxy > 0)) return () => true;
  if (!Array.isArray(trustProxy) || trustProxy.length === 0) return () => false;
  const proxies = new BlockList();
  for (const entry of trustProxy as readonly string[]) {
    const [address, prefix] = entry.split('/') as [string, string | undefined];
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) proxies.addAddress(normalize(address), type);
    else proxies.addSubnet(normalize(address), Number(prefix), type);
  }
  return (address) => {
    try {
      return proxies.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
  };
}

/** An IPv4 peer on a dual-stack socket reads `::ffff:1.2.3.4`; it is the same client as `1.2.3.4`. */
function normalize(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
