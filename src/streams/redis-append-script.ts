import type { Redis } from 'ioredis';
import { encodeLive, type RedisLogKeys } from './redis-log-format.js';

/**
 * One flush of a turn's log, atomic and in one round trip (scale-out.md §6.7). KEYS: the Stream and
 * the meta hash. ARGV: the writing log's id, the first position sent, the time to live (ms), whether
 * the last entry sent is the final one, the live message, the live channel, then data and token
 * index ('' for none) of each entry.
 *
 * - A log without meta is created only from position 0: a log that vanished (expired, Redis
 *   restarted empty) is never resurrected as a partial one (MISSING).
 * - A log owned by another writer (a reaper that sealed it, a newer producer) refuses (FENCED): the
 *   meta hash is where a fencing generation lives.
 * - Entries below `next` were written by an earlier try of this flush and are skipped; the explicit
 *   ids would refuse them anyway, so a retried flush never duplicates an entry.
 * - Every flush, even an empty one, refreshes the time to live of both keys.
 *
 * Returns [status, next position, cancel flag]; status OK, MISSING, FENCED or GAP (the log lacks
 * entries the writer believes written: Redis lost writes).
 */
const APPEND_LUA = `
local meta = redis.call('HMGET', KEYS[2], 'owner', 'next', 'sealed', 'cancel')
local first = tonumber(ARGV[2])
local count = (#ARGV - 6) / 2
local next
if not meta[1] then
  if first ~= 0 then return {'MISSING', 0, ''} end
  next = 0
  redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'next', 0)
elseif meta[1] ~= ARGV[1] then
  return {'FENCED', tonumber(meta[2]) or 0, ''}
else
  next = tonumber(meta[2])
end
if first > next then return {'GAP', next, ''} end
if first + count > next then
  if meta[3] then return {'FENCED', next, ''} end
  local final = ARGV[4] == '1'
  for i = next - first, count - 1 do
    local id = '0-' .. (first + i + 1)
    local data = ARGV[7 + 2 * i]
    local index = ARGV[8 + 2 * i]
    local last = final and i == count - 1
    if index == '' then
      if last then redis.call('XADD', KEYS[1], id, 'd', data, 'f', '1')
      else redis.call('XADD', KEYS[1], id, 'd', data) end
    else
      if last then redis.call('XADD', KEYS[1], id, 'd', data, 'i', index, 'f', '1')
      else redis.call('XADD', KEYS[1], id, 'd', data, 'i', index) end
    end
  end
  next = first + count
  if final then redis.call('HSET', KEYS[2], 'next', next, 'sealed', '1')
  else redis.call('HSET', KEYS[2], 'next', next) end
  if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[5]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {'OK', next, meta[4] or ''}
`;

/** Sets the time to live of an ended log's keys, and only of an ended one: a reader must not shorten a generating turn's. */
const EXPIRE_SEALED_LUA = `
if redis.call('HGET', KEYS[2], 'sealed') then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return 1
end
return 0
`;

/** What a flush's entries are. */
export interface FlushEntry {
  data: string;
  tokenIndex: number | undefined;
}

/** What Redis answered a flush: OK with the next position, or why the log refused it. */
export interface FlushResult {
  status: 'OK' | 'MISSING' | 'FENCED' | 'GAP';
  next: number;
  /** Whether the turn's meta carries a cancel flag (set by another instance to stop this generation). */
  cancel: boolean;
}

interface ScriptedRedis extends Redis {
  chatwaitAppend(log: string, meta: string, ...args: (string | number)[]): Promise<[string, number, string]>;
  chatwaitExpireSealed(log: string, meta: string, ttlMs: number): Promise<number>;
}

/** Teaches a connection the log's scripts (sent by EVALSHA, loaded again by ioredis when Redis forgot them). */
export function defineLogScripts(redis: Redis): void {
  redis.defineCommand('chatwaitAppend', { numberOfKeys: 2, lua: APPEND_LUA });
  redis.defineCommand('chatwaitExpireSealed', { numberOfKeys: 2, lua: EXPIRE_SEALED_LUA });
}

/** Writes entries from position `first` (skipping those already there) and refreshes the keys' time to live, as `writer`. */
export async function appendToRedisLog(
  redis: Redis,
  keys: RedisLogKeys,
  writer: string,
  first: number,
  entries: readonly FlushEntry[],
  options: { final: boolean; ttlMs: number },
): Promise<FlushResult> {
  const args: (string | number)[] = [writer, first, Math.max(1, Math.ceil(options.ttlMs)), options.final ? '1' : '0'];
  args.push(entries.length > 0 ? encodeLive(first, entries, options.final) : '', keys.live);
  for (const entry of entries) args.push(entry.data, entry.tokenIndex ?? '');
  const [status, next, cancel] = await (redis as ScriptedRedis).chatwaitAppend(keys.log, keys.meta, ...args);
  return { status: status as FlushResult['status'], next: Number(next), cancel: cancel === '1' };
}

/** Sets an ended log's time to live; resolves to whether the log had ended (it is left alone otherwise). */
export async function expireSealedRedisLog(redis: Redis, keys: RedisLogKeys, ttlMs: number): Promise<boolean> {
  return (await (redis as ScriptedRedis).chatwaitExpireSealed(keys.log, keys.meta, Math.max(1, Math.ceil(ttlMs)))) === 1;
}
