import { afterEach } from 'vitest';
import type { LogEntry, LogSnapshot, NewLogEntry, ReplayLog } from '../../src/streams/replay-log.js';
import { RedisReplayLog, type RedisReplayLogOptions } from '../../src/streams/redis-replay-log.js';
import { testKeyPrefix, testRedisUrl } from './redis.js';

/** A Redis replay log on the run's Redis, under a key prefix of its own unless one is given. */
export function connectTestLog(options: Partial<RedisReplayLogOptions> = {}): Promise<RedisReplayLog> {
  return RedisReplayLog.connect({ url: testRedisUrl(), keyPrefix: testKeyPrefix(), pollMs: 200, ...options });
}

/**
 * Two Redis replay logs as two instances would hold them, seen as one log: the first produces (open,
 * append, settled), every read goes to the second, which reads the turn from Redis. A read starts
 * once what was appended before it is acknowledged (as a reader on another instance arrives after a
 * write window), then follows the live tail from the other instance. Expiring goes to both, once
 * the reads begun before it have their first entries (a remote reader can only know a log that is
 * gone as one it never saw: the contract's short times to live would otherwise race its first read).
 */
export class PairedReplayLog implements ReplayLog {
  readonly producer: RedisReplayLog;
  readonly reader: RedisReplayLog;
  /** Reads begun that have not had their first entries yet. */
  readonly #beginning = new Set<Promise<void>>();

  constructor(producer: RedisReplayLog, reader: RedisReplayLog) {
    this.producer = producer;
    this.reader = reader;
  }

  /** Two logs on one fresh key prefix. */
  static async connect(options: Partial<RedisReplayLogOptions> = {}): Promise<PairedReplayLog> {
    const keyPrefix = testKeyPrefix();
    const [producer, reader] = await Promise.all([connectTestLog({ keyPrefix, ...options }), connectTestLog({ keyPrefix, ...options })]);
    return new PairedReplayLog(producer, reader);
  }

  readonly backend = 'redis';

  async ping(): Promise<void> {
    await Promise.all([this.producer.ping(), this.reader.ping()]);
  }

  open(turnId: string): void {
    this.producer.open(turnId);
  }

  append(turnId: string, entry: NewLogEntry): number {
    return this.producer.append(turnId, entry);
  }

  async *read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<readonly LogEntry[]> {
    let begun!: () => void;
    const beginning = new Promise<void>((resolve) => (begun = resolve));
    this.#beginning.add(beginning);
    const begin = () => {
      this.#beginning.delete(beginning);
      begun();
    };
    try {
      await this.producer.settled(turnId);
      for await (const batch of this.reader.read(turnId, from, signal)) {
        begin();
        yield batch;
      }
    } finally {
      begin();
    }
  }

  async snapshot(turnId: string): Promise<LogSnapshot | undefined> {
    await this.producer.settled(turnId);
    return this.reader.snapshot(turnId);
  }

  async has(turnId: string): Promise<boolean> {
    await this.producer.settled(turnId);
    return this.reader.has(turnId);
  }

  settled(turnId: string): Promise<void> {
    return this.producer.settled(turnId);
  }

  expire(turnId: string, ttlMs: number): void {
    void Promise.all(this.#beginning).then(() => {
      this.producer.expire(turnId, ttlMs);
      this.reader.expire(turnId, ttlMs);
    });
  }

  async close(): Promise<void> {
    await this.producer.close();
    await this.reader.close();
  }
}

/** Entry `position` of a test turn: text that JSON, Redis and UTF-8 must carry unchanged. */
export function entryAt(position: number): { data: string; tokenIndex: number | undefined } {
  if (position % 7 === 6)
    return { data: JSON.stringify({ type: 'tool_call', n: position, text: 'a\nb\r\n"c"\\ \u0000 \u2028' }), tokenIndex: undefined };
  const token = ['héllo', '👋🏽', ' 中文', '\ud83d', 'x'.repeat(3000), '  ', ''][position % 7]!;
  return { data: JSON.stringify({ token, token_index: position }), tokenIndex: position };
}

/** The entries `from` to `to` (excluded) as a reader gets them. */
export function expectedEntries(from: number, to: number): LogEntry[] {
  return Array.from({ length: to - from }, (_, offset) => ({ position: from + offset, ...entryAt(from + offset) }));
}

/** Appends entries `from` to `to` (excluded) of the test turn, `final` the last one if given. */
export function fillLog(log: ReplayLog, turnId: string, from: number, to: number, final?: number): void {
  for (let position = from; position < to; position++) log.append(turnId, { ...entryAt(position), final: position === final });
}

/** Logs (and anything else with `close`) a test opens, closed after each test, last opened first (a log before the proxy it talks through). */
export function closedAfterEach(): {
  opened: { close(): Promise<unknown> }[];
  connect(options?: Partial<RedisReplayLogOptions>): Promise<RedisReplayLog>;
  twoInstances(options?: Partial<RedisReplayLogOptions>): Promise<[RedisReplayLog, RedisReplayLog]>;
} {
  const opened: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const log of opened.splice(0).reverse()) await log.close();
  });
  const connect = async (options: Partial<RedisReplayLogOptions> = {}) => {
    const log = await connectTestLog(options);
    opened.push(log);
    return log;
  };
  const twoInstances = async (options: Partial<RedisReplayLogOptions> = {}): Promise<[RedisReplayLog, RedisReplayLog]> => {
    const keyPrefix = testKeyPrefix();
    return [await connect({ keyPrefix, ...options }), await connect({ keyPrefix, ...options })];
  };
  return { opened, connect, twoInstances };
}
