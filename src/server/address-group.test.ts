import { describe, expect, it } from 'vitest';
import { addressGroup, normalizeAddress } from './address-group.js';

describe('addressGroup', () => {
  it('keeps IPv4 addresses, IPv4-mapped IPv6 included, as themselves', () => {
    expect(addressGroup('203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressGroup('::FFFF:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
  });

  it('groups IPv6 addresses by their /64, whatever their spelling', () => {
    const group = '2001:db8:aa:1::/64';
    expect(addressGroup('2001:db8:aa:1::1')).toBe(group);
    expect(addressGroup('2001:0DB8:00aa:0001:ffff:ffff:ffff:ffff')).toBe(group);
    expect(addressGroup('2001:db8:aa:1:1234::%eth0')).toBe(group);
    expect(addressGroup('2001:db8:aa:2::1')).not.toBe(group);
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1')).toBe('fe80:0:0:0::/64');
    expect(addressGroup('64:ff9b::192.0.2.1')).toBe('64:ff9b:0:0::/64');
  });

  it('returns anything that is not an IP address unchanged', () => {
    expect(addressGroup('')).toBe('');
    expect(addressGroup('not-an-address')).toBe('not-an-address');
  });
});
