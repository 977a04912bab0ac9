import { describe } from 'vitest';
import { MemoryReplayLog } from '../src/streams/memory-replay-log.js';
import { replayLogContract } from './support/replay-log-contract.js';
import { hasRedis } from './support/redis.js';
import { connectTestLog, PairedReplayLog } from './support/redis-replay-logs.js';

replayLogContract('memory', () => new MemoryReplayLog(), { createTight: () => new MemoryReplayLog({ maxBytes: 20_000 }) });
replayLogContract('memory (byte budget)', () => new MemoryReplayLog({ maxBytes: 64 * 1_048_576 }));

describe.skipIf(!hasRedis())('in Redis', () => {
  // Read where it is produced (the local copy), and through Redis as another instance reads it, at once and batched.
  // Tight: the producer's copy drops ended turns early, and their readers go on from Redis.
  replayLogContract('Redis (read by its producer)', () => connectTestLog({ writeWindowMs: 5 }), {
    createTight: () => connectTestLog({ writeWindowMs: 5, maxBytes: 20_000 }),
  });
  replayLogContract('Redis (read by another instance, each entry flushed at once)', () => PairedReplayLog.connect({ writeWindowMs: 0 }));
  replayLogContract('Redis (read by another instance, 20 ms write window)', () => PairedReplayLog.connect({ writeWindowMs: 20 }));
});
