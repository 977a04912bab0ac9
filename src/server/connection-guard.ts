import { BlockList, isIPv6, type Socket } from 'node:net';
import type { Server } from 'node:http';
import { addressGroup, normalizeAddress } from './address-group.js';

/** How many connections the guard lets in, and which peers are proxies (many clients behind one address). */
export interface ConnectionGuardOptions {
  /**
   * Per client (an address, IPv6 by /64): unproven connections it may hold (past it its oldest is
   * closed), and proven connections (past it the proving request is refused). 0: no limit.
   */
  maxPerClient: number;
  /** Connections, all addresses together, that have not yet carried a request that proved them (0: no limit). */
  maxPending: number;
  /** TRUST_PROXY: peers it trusts are proxies, whose address stands for many clients, so not capped per address. */
  trustProxy: boolean | number | readonly string[];
}

/** What the routes tell the guard about a connection. */
export interface ConnectionGuard {
  /**
   * A request on this connection passed the API key check (or, without keys, arrived whole on a known
   * route): the connection leaves the unproven pool and counts for `client` (its key; by default its
   * address). Returns false, leaving it unproven, when that client already holds `maxPerClient` proven ones.
   */
  prove(socket: Socket, client?: string): boolean;
  /** Keeps an unproven connection from being closed while a request on it is answered; returns the release. */
  hold(socket: Socket): () => void;
}

/**
 * Bounds the connections clients can hold without reading anything from them. Every connection is
 * accepted as unproven. One client (address) holds at most `maxPerClient` unproven connections: a new
 * one closes its oldest, so a flood from an address never locks out a keyed client on that same
 * address, whose new connection gets in and proves itself. All unproven connections share a pool of
 * `maxPending`, again closing the oldest, so a flood from however many addresses holds at most that
 * many descriptors. Proven connections are bounded per key (per address without keys) at `prove`.
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): ConnectionGuard {
  const isProxy = proxyMatcher(options.trustProxy);
  // Sets iterate in insertion order: the first entry is the oldest connection still unproven.
  const pending = new Set<Socket>();
  const pendingByGroup = new Map<string, Set<Socket>>();
  /** The address group of each connection; null for a trusted proxy, never capped per address. */
  const groups = new WeakMap<Socket, string | null>();
  const provenCount = new Map<string, number>();
  const provenBy = new WeakMap<Socket, string>();
  const held = new WeakSet<Socket>();

  const unpend = (socket: Socket) => {
    pending.delete(socket);
    const group = groups.get(socket) ?? null;
    if (group === null) return;
    const sockets = pendingByGroup.get(group);
    sockets?.delete(socket);
    if (sockets?.size === 0) pendingByGroup.delete(group);
  };
  const evict = (socket: Socket) => {
    unpend(socket);
    socket.destroy();
  };
  const pend = (socket: Socket) => {
    pending.add(socket);
    const group = groups.get(socket) ?? null;
    if (group !== null && options.maxPerClient > 0) {
      const sockets = pendingByGroup.get(group) ?? new Set<Socket>();
      pendingByGroup.set(group, sockets);
      sockets.add(socket);
      if (sockets.size > options.maxPerClient) evict(sockets.values().next().value!);
    }
    if (options.maxPending > 0 && pending.size > options.maxPending) evict(pending.values().next().value!);
  };

  server.on('connection', (socket: Socket) => {
    const address = normalizeAddress(socket.remoteAddress ?? '');
    groups.set(socket, isProxy(address) ? null : addressGroup(address));
    socket.once('close', () => {
      unpend(socket);
      held.delete(socket);
      const client = provenBy.get(socket);
      if (client === undefined) return;
      const left = (provenCount.get(client) ?? 1) - 1;
      if (left > 0) provenCount.set(client, left);
      else provenCount.delete(client);
    });
    pend(socket);
  });

  return {
    prove(socket, client) {
      if (provenBy.has(socket) || socket.destroyed) return true;
      const owner = client ?? groups.get(socket) ?? null;
      if (owner !== null && options.maxPerClient > 0) {
        const count = provenCount.get(owner) ?? 0;
        if (count >= options.maxPerClient) return false;
        provenCount.set(owner, count + 1);
        provenBy.set(socket, owner);
      }
      unpend(socket);
      held.delete(socket);
      return true;
    },
    hold(socket) {
      if (!pending.has(socket)) return () => {};
      unpend(socket);
      held.add(socket);
      return () => {
        if (!held.has(socket)) return;
        held.delete(socket);
        if (!socket.destroyed) pend(socket);
      };
    },
  };
}

/** Whether a peer address (normalised) is a proxy TRUST_PROXY trusts: `true` or a hop count trust the direct peer; a list names them. */
export function proxyMatcher(trustProxy: boolean | number | readonly string[]): (address: string) => boolean {
  if (trustProxy === true || (typeof trustProxy === 'number' && trustProxy > 0)) return () => true;
  if (!Array.isArray(trustProxy) || trustProxy.length === 0) return () => false;
  const proxies = new BlockList();
  for (const entry of trustProxy as readonly string[]) {
    const [raw, prefixText] = entry.split('/') as [string, string | undefined];
    const address = normalizeAddress(raw);
    // The type is the normalised address's: ::ffff:10.0.0.1 is the IPv4 peer 10.0.0.1.
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefixText === undefined) {
      proxies.addAddress(address, type);
      continue;
    }
    const prefix = Number(prefixText);
    // An IPv4-mapped subnet (::ffff:10.0.0.0/104) is the IPv4 subnet 10.0.0.0/8; a shorter one stays IPv6.
    if (address !== raw && prefix < 96) proxies.addSubnet(raw, prefix, 'ipv6');
    else proxies.addSubnet(address, address !== raw ? prefix - 96 : prefix, type);
  }
  return (address) => {
    try {
      return proxies.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
  };
}
