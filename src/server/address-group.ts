import { isIPv4, isIPv6 } from 'node:net';

/** An IPv4 peer on a dual-stack socket reads `::ffff:1.2.3.4`; it is the same client as `1.2.3.4`. */
export function normalizeAddress(address: string): string {
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice('::ffff:'.length)) ? lower.slice('::ffff:'.length) : address;
}

/**
 * The client an address stands for, for per-client caps: an IPv4 address is itself (IPv4-mapped
 * IPv6 included), an IPv6 address its /64, since one host usually gets a whole /64 and could
 * otherwise count as 2^64 clients. Anything else (not an IP) is returned unchanged.
 */
export function addressGroup(address: string): string {
  const normalized = normalizeAddress(address);
  const bare = normalized.split('%')[0]!;
  if (!isIPv6(bare)) return normalized;
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of a valid IPv6 address, lower case, without leading zeros. */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (64:ff9b::1.2.3.4) is two hextets.
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((hextet) => Number.parseInt(hextet, 16).toString(16));
}
