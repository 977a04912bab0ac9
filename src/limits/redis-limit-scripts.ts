import type { Redis } from 'ioredis';

/**
 * A token bucket, decided in Redis with Redis's clock (TIME; Redis 7 replicates a script's effects,
 * so a script that reads the clock is allowed): no instance's clock matters and two instances never
 * both take the last token. KEYS[1] = the bucket (a hash: tokens, updated ms); ARGV = capacity,
 * tokens per millisecond. The key expires once the bucket would be full again: a missing bucket is a
 * full one. Returns {allowed 1/0, tokens left as a string} (Redis would truncate a Lua float).
 */
const TAKE_TOKEN = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
local left = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tokens', left, 'updated', now)
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / rate)))
return {allowed, left}
`;

/**
 * Takes a lease if the client holds fewer than the cap. KEYS[1] = the client's leases (a sorted set:
 * member = lease id, score = expiry in Redis ms); ARGV = cap, lease id, lease ms. Expired leases (of a
 * killed instance) are dropped first, so they free their slots by themselves. Returns 1 if taken.
 */
const ACQUIRE_LEASE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`;

/**
 * Extends the leases ARGV[2..] of KEYS[1] by ARGV[1] ms from Redis's now. Only leases still there
 * (ZADD XX): one that expired while this instance could not reach Redis stays gone, so the cap is
 * never exceeded by a lease coming back. Returns how many were extended.
 */
const REFRESH_LEASES = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[1])
local extended = 0
for index = 2, #ARGV do
  extended = extended + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + ttl, ARGV[index])
end
if extended > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return extended
`;

/** The limiter's scripts as commands of a connection (EVALSHA, loaded again by ioredis when Redis forgot them). */
export interface LimitCommands {
  takeToken(key: string, capacity: number, perMillisecond: number): Promise<[number, string]>;
  acquireLease(key: string, max: number, leaseId: string, leaseMs: number): Promise<number>;
  refreshLeases(key: string, leaseMs: number, ...leaseIds: string[]): Promise<number>;
}

/** Defines the limiter's scripts on a connection. */
export function defineLimitScripts(redis: Redis): Redis & LimitCommands {
  redis.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
  redis.defineCommand('acquireLease', { numberOfKeys: 1, lua: ACQUIRE_LEASE });
  redis.defineCommand('refreshLeases', { numberOfKeys: 1, lua: REFRESH_LEASES });
  return redis as Redis & LimitCommands;
}
