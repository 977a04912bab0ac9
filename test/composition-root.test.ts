import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createServices } from '../src/app/create-services.js';
import { loadConfig } from '../src/config.js';
import { MemoryConversationStore } from '../src/store/memory-store.js';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { MemoryReplayLog } from '../src/streams/memory-replay-log.js';
import { RedisReplayLog } from '../src/streams/redis-replay-log.js';
import { hasRedis, testRedisUrl } from './support/redis.js';
import { connectTestLog } from './support/redis-replay-logs.js';
import { TEST_ENV } from './support/test-server.js';

const config = loadConfig({ ...TEST_ENV, TOOLS: 'none' }, undefined);
const newTurn = (turnId: string, contextId: string) => ({
  turnId,
  contextId,
  userMessage: 'hello',
  model: 'chatwait-demo',
  clientMessageId: undefined,
  owner: null,
});

describe('the composition root', () => {
  it('marks the turns a previous process left generating as interrupted when it recovers, and times that in the metrics', async () => {
    const store = new MemoryConversationStore();
    await store.startTurn(newTurn('left-over', 'crashed'));
    const services = await createServices(config, { store });
    try {
      expect((await store.latestTurn('crashed'))!.status).toBe('streaming');
      await services.recover();
      expect((await store.latestTurn('crashed'))!.status).toBe('interrupted');
      const scraped = await services.metrics.registry.metrics();
      expect(scraped).toMatch(/^chatwait_store_operation_duration_seconds_count\{operation="markInterrupted"\} 1$/m);
    } finally {
      await services.close();
    }
  });

  it('stores the outcomes the store refused before it closes the store, on close', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chatwait-root-')), 'chat.db');
    const store = new SqliteConversationStore(path);
    await store.startTurn(newTurn('refused-once', 'pending'));
    const services = await createServices(config, { store });
    services.pendingOutcomes.add('refused-once', {
      status: 'complete',
      answer: 'kept',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 1,
    });
    await services.close();
    await expect(store.ping()).rejects.toThrow();

    const reopened = new SqliteConversationStore(path);
    try {
      expect(await reopened.latestTurn('pending')).toMatchObject({ status: 'complete', answer: 'kept', tokenCount: 1 });
    } finally {
      await reopened.close();
    }
  });

  it('reports what the memory replay log holds at each scrape', async () => {
    const replayLog = new MemoryReplayLog({ maxBytes: 1 << 20 });
    const services = await createServices(config, { replayLog });
    try {
      expect(await services.metrics.registry.metrics()).toMatch(/^chatwait_replay_log_bytes 0$/m);
    } finally {
      await services.close();
    }
  });

  it.skipIf(!hasRedis())('keeps the replay logs in Redis when REDIS_URL is set, and what its copy holds in the metrics', async () => {
    const services = await createServices(loadConfig({ ...TEST_ENV, TOOLS: 'none', REDIS_URL: testRedisUrl() }, undefined));
    try {
      expect(services.replayLog).toBeInstanceOf(RedisReplayLog);
      const { turnId, done } = await services.turns.start({ message: 'hello', contextId: 'redis-root', owner: null });
      await done;
      expect(await (services.replayLog as RedisReplayLog).local.has(turnId)).toBe(true);
      expect(await services.metrics.registry.metrics()).toMatch(/^chatwait_replay_log_bytes [1-9]\d*$/m);
      // In Redis, where another instance reads it.
      const other = await connectTestLog({ keyPrefix: 'cw:' });
      try {
        expect((await other.snapshot(turnId))?.ended).toBe(true);
      } finally {
        await other.close();
      }
    } finally {
      await services.close();
    }
  });
});
