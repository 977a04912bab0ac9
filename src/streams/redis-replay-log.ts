import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { closeConnection, connectRedis } from '../redis-connection.js';
import { MemoryReplayLog } from './memory-replay-log.js';
import { defineLogScripts, expireSealedRedisLog } from './redis-append-script.js';
import { decodeRange, redisLogKeys, type RedisLogKeys } from './redis-log-format.js';
import { readRemote, type RemoteReadContext } from './redis-remote-reader.js';
import { RedisTailHub } from './redis-tail-hub.js';
import { RedisTurnControl, type RedisTurnControlOptions } from './redis-turn-control.js';
import { RedisTurnWriter } from './redis-turn-writer.js';
import { ReplayLogEvicted, ReplayLogUnavailable, type LogEntry, type LogSnapshot, type NewLogEntry, type ReplayLog } from './replay-log.js';

/** Options of the replay log kept in Redis. */
export interface RedisReplayLogOptions {
  /** The Redis to use (`REDIS_URL`). */
  url: string;
  /** What every key and channel name starts with; `cw:` by default (tests give each log its own). */
  keyPrefix?: string;
  /** How long appended entries wait to be sent to Redis with the next ones (`REDIS_WRITE_WINDOW_MS`); 0: each at once. */
  writeWindowMs?: number;
  /** The time to live of a generating turn's keys, refreshed by every flush and at least every third of it. */
  runningTtlMs?: number;
  /** How long a reader on another instance waits before reading the stream again anyway; 2 s by default. */
  pollMs?: number;
  /** The longest `settled` (which a turn's end awaits) waits for Redis; 5 s by default. Writes are retried after it. */
  settleTimeoutMs?: number;
  /** The byte budget of this process's copy of the logs (`REPLAY_LOG_MAX_BYTES`); see MemoryReplayLog. */
  maxBytes?: number;
  /** How long a connection waits for Redis at start before giving up; 5 s by default. */
  connectTimeoutMs?: number;
  /** Told of a connection error (ioredis reconnects by itself). */
  onConnectionError?: (error: Error) => void;
  /** Told when Redis refuses a turn's log (FENCED: taken over; MISSING: vanished) or its writes were given up. */
  onWriteStopped?: (turnId: string, reason: string) => void;
  /**
   * Test-only: awaited by a reader on another instance before each range read of the stream and after its
   * reply, so a test can widen the backlog-to-live handoff's races (entries appended, messages arriving meanwhile).
   */
  rangeReadHook?: (step: 'before' | 'after') => Promise<void> | void;
}

/** Defaults of the options, in milliseconds. */
const DEFAULT_WINDOW_MS = 10;
const DEFAULT_RUNNING_TTL_MS = 10 * 60_000;
const DEFAULT_POLL_MS = 2000;
const DEFAULT_SETTLE_TIMEOUT_MS = 5000;
/** How long `close` lets remote readers hand out what the stream holds before the connections go. */
const CLOSE_READERS_MS = 1000;

/**
 * The replay log in Redis Streams, for several instances behind one load balancer (scale-out.md §6):
 * one Stream per turn, entry ids derived from the positions. The producing instance keeps a copy in
 * its memory (a MemoryReplayLog), so its own readers read exactly as without Redis, and sends the
 * entries to Redis in coalesced flushes, one round trip each; any other instance reads a turn from
 * Redis, its backlog by range reads and its live tail through one shared subscriber connection.
 * An ended turn read from Redis is kept in the memory copy too, since it no longer changes.
 */
export class RedisReplayLog implements ReplayLog {
  readonly backend = 'redis';
  readonly #redis: Redis;
  readonly #hub: RedisTailHub;
  readonly #local: MemoryReplayLog;
  readonly #prefix: string;
  readonly #id = randomUUID();
  readonly #options: Required<Pick<RedisReplayLogOptions, 'writeWindowMs' | 'runningTtlMs' | 'pollMs' | 'settleTimeoutMs'>>;
  readonly #onWriteStopped: RedisReplayLogOptions['onWriteStopped'];
  /** The turns this log produces (opened here) and has not expired yet. */
  readonly #writers = new Map<string, RedisTurnWriter>();
  /** When each turn this log was told to expire leaves: a reader of its copy that lost it then does not look in Redis. */
  readonly #expiries = new Map<string, number>();
  readonly #remoteReaders = new Set<Promise<void>>();
  readonly #closeWakers = new Set<() => void>();
  readonly #remote: RemoteReadContext;
  readonly #keepAlive: NodeJS.Timeout;
  #control: RedisTurnControl | undefined;
  #closing = false;

  /** Connects to Redis and resolves once it answers; rejects with a message naming REDIS_URL if it does not in time. */
  static async connect(options: RedisReplayLogOptions): Promise<RedisReplayLog> {
    const log = new RedisReplayLog(options);
    try {
      await connectRedis(log.#redis, options.url, options.connectTimeoutMs ?? 5000);
    } catch (error) {
      await log.close();
      throw error;
    }
    return log;
  }

  private constructor(options: RedisReplayLogOptions) {
    this.#prefix = options.keyPrefix ?? 'cw:';
    this.#options = {
      writeWindowMs: options.writeWindowMs ?? DEFAULT_WINDOW_MS,
      runningTtlMs: options.runningTtlMs ?? DEFAULT_RUNNING_TTL_MS,
      pollMs: options.pollMs ?? DEFAULT_POLL_MS,
      settleTimeoutMs: options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS,
    };
    this.#onWriteStopped = options.onWriteStopped;
    const onError = (error: Error) => options.onConnectionError?.(error);
    // Fail fast while Redis is away (no offline queue, one retry, 1 s per command): writers retry on their own, readers report it.
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: 1000,
    });
    this.#redis.on('error', onError);
    defineLogScripts(this.#redis);
    this.#hub = new RedisTailHub(() => {
      // Pub/sub needs its own connection; it queues SUBSCRIBE while reconnecting, then resubscribes.
      const subscriber = new Redis(options.url, { maxRetriesPerRequest: null });
      subscriber.on('error', onError);
      return subscriber;
    });
    this.#local = new MemoryReplayLog({ maxBytes: options.maxBytes });
    this.#remote = {
      redis: this.#redis,
      hub: this.#hub,
      pollMs: this.#options.pollMs,
      rangeReadHook: options.rangeReadHook,
      closing: () => this.#closing,
      onClose: (wake) => {
        this.#closeWakers.add(wake);
        return () => this.#closeWakers.delete(wake);
      },
    };
    // Generating turns that flushed nothing for a third of their time to live (a long tool call) get it refreshed.
    const refreshEvery = this.#options.runningTtlMs / 3;
    this.#keepAlive = setInterval(() => {
      const stale = Date.now() - refreshEvery;
      for (const writer of this.#writers.values()) if (!writer.ended && writer.lastFlushAt < stale) writer.flush();
    }, refreshEvery);
    this.#keepAlive.unref();
  }

  /** What every key and channel name of this log starts with. */
  get keyPrefix(): string {
    return this.#prefix;
  }

  /** The cancels and seals across instances over this log's connections (made on the first call; later calls get the same). */
  control(options: Pick<RedisTurnControlOptions, 'sealedTtlMs' | 'pollMs'>): RedisTurnControl {
    this.#control ??= new RedisTurnControl({
      ...options,
      redis: this.#redis,
      hub: this.#hub,
      prefix: this.#prefix,
      keys: (turnId) => this.#keys(turnId),
    });
    return this.#control;
  }

  /** This process's copy of the logs (what it produces, and ended turns it read from Redis). */
  get local(): MemoryReplayLog {
    return this.#local;
  }

  open(turnId: string): void {
    this.#local.open(turnId);
    if (this.#writers.has(turnId)) return;
    const writer = new RedisTurnWriter({
      redis: this.#redis,
      keys: this.#keys(turnId),
      writer: this.#id,
      windowMs: this.#options.writeWindowMs,
      runningTtlMs: this.#options.runningTtlMs,
      settleTimeoutMs: this.#options.settleTimeoutMs,
      // Past the time to live of a generating turn's keys, what is left to write would land in a log Redis dropped.
      giveUpMs: this.#options.runningTtlMs,
      onStopped: (reason) => this.#onWriteStopped?.(turnId, reason),
      // A flush's answer carries the turn's cancel flag: the cheapest way the producer hears of a cancel.
      onCancel: () => this.#control?.cancelRequested(turnId),
      onDone: () => {
        if (this.#writers.get(turnId) === writer) this.#writers.delete(turnId);
      },
    });
    this.#writers.set(turnId, writer);
    // The log exists in Redis from the start, so another instance sees an empty log rather than none.
    writer.flush();
  }

  append(turnId: string, entry: NewLogEntry): number {
    const position = this.#local.append(turnId, entry);
    this.#writers.get(turnId)?.add({ data: entry.data, tokenIndex: entry.tokenIndex }, entry.final === true);
    return position;
  }

  async *read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<readonly LogEntry[]> {
    let next = from;
    // Checked and read with no wait between: the copy cannot leave in between and pass for an empty log.
    if (this.#local.holds(turnId)) {
      try {
        for await (const batch of this.#local.read(turnId, from, signal)) {
          next = batch.at(-1)!.position + 1;
          yield batch;
        }
        return;
      } catch (error) {
        // The copy left memory (the byte budget) before this reader was done: Redis still has the turn, unless it expired.
        if (!(error instanceof ReplayLogEvicted) || this.#closing || this.#expiredHere(turnId)) throw error;
      }
      await this.#writtenHere(turnId);
      yield* this.#readRemote(turnId, next, signal, true);
      return;
    }
    await this.#writtenHere(turnId);
    yield* this.#readRemote(turnId, next, signal, false);
  }

  async snapshot(turnId: string): Promise<LogSnapshot | undefined> {
    const local = await this.#local.snapshot(turnId);
    if (local) return local;
    await this.#writtenHere(turnId);
    const keys = this.#keys(turnId);
    const [next, reply, ttl] = await unavailableOnFailure(
      Promise.all([
        this.#redis.hget(keys.meta, 'next'),
        this.#redis.xrange(keys.log, '-', '+') as Promise<[string, string[]][]>,
        this.#redis.pttl(keys.log),
      ]),
    );
    if (next === null && reply.length === 0) return undefined;
    const { entries, finalPosition } = decodeRange(reply);
    if (finalPosition === undefined) return { entries, ended: false };
    // An ended log never changes: kept here (until Redis lets it go) for the next readers.
    if (!this.#closing) {
      try {
        this.#local.open(turnId);
        for (const entry of entries) this.#local.append(turnId, { ...entry, final: entry.position === finalPosition });
        this.#local.expire(turnId, ttl > 0 ? ttl : this.#options.runningTtlMs);
      } catch {
        // Another snapshot kept it first (its appends end it, so these are refused): that copy serves.
      }
    }
    return (await this.#local.snapshot(turnId)) ?? { entries, ended: true };
  }

  async has(turnId: string): Promise<boolean> {
    if (this.#local.holds(turnId)) return true;
    await this.#writtenHere(turnId);
    return (await unavailableOnFailure(this.#redis.exists(this.#keys(turnId).meta))) === 1;
  }

  async ping(): Promise<void> {
    await unavailableOnFailure(this.#redis.ping());
  }

  settled(turnId: string): Promise<void> {
    return this.#writers.get(turnId)?.settled() ?? Promise.resolve();
  }

  expire(turnId: string, ttlMs: number): void {
    this.#local.expire(turnId, ttlMs);
    this.#expiries.set(turnId, Date.now() + ttlMs);
    const writer = this.#writers.get(turnId);
    setTimeout(() => {
      if ((this.#expiries.get(turnId) ?? 0) > Date.now()) return;
      this.#expiries.delete(turnId);
      // A turn expired before its end: its copy is gone, so is its writer.
      if (writer && this.#writers.get(turnId) === writer) {
        writer.stop();
        this.#writers.delete(turnId);
      }
    }, ttlMs + 1000).unref();
    if (writer) {
      // Still writing: the time to live goes with its flushes, after what is pending.
      writer.expire(ttlMs);
      return;
    }
    // Written (here or by another instance): only an ended log's time to live is set (its producer keeps a generating one alive).
    expireSealedRedisLog(this.#redis, this.#keys(turnId), ttlMs).catch(() => {});
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#keepAlive);
    await this.#control?.close();
    const writers = [...this.#writers.values()];
    for (const writer of writers) writer.flush();
    await Promise.all(writers.map((writer) => writer.settled()));
    for (const writer of writers) writer.stop();
    this.#writers.clear();
    // Remote readers hand out what the stream holds, then end; the connections go after them.
    for (const wake of this.#closeWakers) wake();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(this.#remoteReaders),
      new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_READERS_MS))),
    ]);
    clearTimeout(timer);
    await this.#local.close();
    await this.#hub.close();
    await closeConnection(this.#redis);
  }

  /** Reads a turn from Redis, counted so `close` can let it finish. */
  async *#readRemote(turnId: string, from: number, signal: AbortSignal | undefined, held: boolean): AsyncIterable<readonly LogEntry[]> {
    if (this.#closing) return;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    this.#remoteReaders.add(done);
    try {
      yield* readRemote(this.#remote, this.#keys(turnId), turnId, from, signal, held);
    } catch (error) {
      // Redis stayed away past what a reader rides out: the caller answers from the store or retryably.
      throw error instanceof ReplayLogEvicted ? error : new ReplayLogUnavailable(error);
    } finally {
      finished();
      this.#remoteReaders.delete(done);
    }
  }

  /**
   * Waits until what this log produced of a turn whose copy has left (the byte budget) is in Redis,
   * so a reader that goes there for it finds it.
   */
  async #writtenHere(turnId: string): Promise<void> {
    await this.#writers.get(turnId)?.settled();
  }

  /** Whether a turn's copy left because this log was told to expire it (rather than for the byte budget). */
  #expiredHere(turnId: string): boolean {
    const at = this.#expiries.get(turnId);
    return at !== undefined && at <= Date.now() + 5;
  }

  #keys(turnId: string): RedisLogKeys {
    return redisLogKeys(this.#prefix, turnId);
  }
}

/** `promise`, failing with ReplayLogUnavailable if Redis does not answer (the command connection fails within a second). */
async function unavailableOnFailure<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw new ReplayLogUnavailable(error);
  }
}
