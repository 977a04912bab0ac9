import type { Redis } from 'ioredis';
import { appendToRedisLog, type FlushEntry, type FlushResult } from './redis-append-script.js';
import type { RedisLogKeys } from './redis-log-format.js';

/** How a turn's writer sends its entries. */
export interface TurnWriterOptions {
  redis: Redis;
  keys: RedisLogKeys;
  /** The writing log's id, kept in the turn's meta: another id there means the turn was taken over. */
  writer: string;
  /** How long appended entries wait to be sent with the next ones (`REDIS_WRITE_WINDOW_MS`); 0: sent at once. */
  windowMs: number;
  /** The time to live of a generating turn's keys, refreshed by every flush. */
  runningTtlMs: number;
  /** The longest `settled` waits for Redis to acknowledge; the writer goes on retrying after it. */
  settleTimeoutMs: number;
  /** How long the writer keeps retrying while Redis fails before it gives the turn's entries up. */
  giveUpMs: number;
  /** Called once when Redis refuses the turn's log (taken over, vanished) or the writer gives up on it. */
  onStopped?: ((reason: 'MISSING' | 'FENCED' | 'GAP' | 'GAVE_UP') => void) | undefined;
  /** Called once the writer has nothing more to do: its final entry acknowledged, or it stopped. */
  onDone?: (() => void) | undefined;
  /** Called when a flush's answer says another instance asked this turn to stop. */
  onCancel?: (() => void) | undefined;
}

/** A caller of `settled`, waiting until the entries before position `upTo` are acknowledged. */
interface SettleWaiter {
  upTo: number;
  resolve: () => void;
}

/** The most entries, and about the most bytes, one flush carries; a bigger backlog goes in several. */
const MAX_FLUSH_ENTRIES = 64;
const MAX_FLUSH_BYTES = 64 * 1024;
/** The first retry delay after a failed flush, doubled up to the last. */
const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 1000;
/** The most bytes of entries a writer keeps while Redis fails; past it, it gives up (Redis's copy of the turn is then incomplete). */
const MAX_PENDING_BYTES = 2 * 1_048_576;

/**
 * Sends one generating turn's entries to Redis in coalesced flushes, one at a time and in order,
 * each one round trip (the append script). A failed flush is retried from the first entry Redis has
 * not acknowledged, so nothing is lost or written twice; `settled` waits at most `settleTimeoutMs`
 * for it, so a Redis outage delays no turn's end for longer. A turn Redis refuses, or that keeps
 * failing for `giveUpMs` or piles up 2 MB, is given up (the store keeps its outcome, the producer's
 * own readers are unaffected).
 */
export class RedisTurnWriter {
  readonly #options: TurnWriterOptions;
  /** Entries appended but not yet acknowledged, from position `#acked`. */
  #pending: FlushEntry[] = [];
  #pendingBytes = 0;
  #acked = 0;
  #final = false;
  #ttlMs: number;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  /** A flush asked for while one was in flight, even with nothing pending (a refresh of the time to live). */
  #again = false;
  #stopped = false;
  #failingSince: number | undefined;
  #failures = 0;
  #lastFlushAt = Date.now();
  #waiters: SettleWaiter[] = [];

  constructor(options: TurnWriterOptions) {
    this.#options = options;
    this.#ttlMs = options.runningTtlMs;
  }

  /** Whether the final entry was appended. */
  get ended(): boolean {
    return this.#final;
  }

  /** When Redis last acknowledged a flush of this turn. */
  get lastFlushAt(): number {
    return this.#lastFlushAt;
  }

  /** Queues an entry (at the next position) and schedules its flush. */
  add(entry: FlushEntry, final: boolean): void {
    if (this.#stopped) return;
    this.#pending.push(entry);
    this.#pendingBytes += entry.data.length;
    if (this.#pendingBytes > MAX_PENDING_BYTES) {
      this.#finish('GAVE_UP');
      return;
    }
    this.#final = final;
    if (this.#due()) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), this.#options.windowMs);
  }

  /** Sets the time to live the keys get from now on, and sends it at once. */
  expire(ttlMs: number): void {
    this.#ttlMs = ttlMs;
    this.flush();
  }

  /** Resolves once every entry added so far is acknowledged, the writer gave them up, or after `settleTimeoutMs`; never rejects. */
  settled(): Promise<void> {
    const upTo = this.#acked + this.#pending.length;
    if (this.#stopped || (upTo === this.#acked && !this.#inFlight)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter: SettleWaiter = { upTo, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((other) => other !== waiter);
        resolve();
      }, this.#options.settleTimeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Sends what is pending now (or just refreshes the time to live), after the flush in flight if there is one. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#stopped) return;
    if (this.#inFlight) {
      this.#again = true;
      return;
    }
    this.#inFlight = true;
    void this.#send();
  }

  /** Gives up whatever is still pending (the log is closing and could not send it). */
  stop(): void {
    this.#finish('GAVE_UP', false);
  }

  async #send(): Promise<void> {
    let count = 0;
    let bytes = 0;
    while (count < this.#pending.length && count < MAX_FLUSH_ENTRIES && (count === 0 || bytes < MAX_FLUSH_BYTES)) {
      bytes += this.#pending[count]!.data.length;
      count++;
    }
    const entries = this.#pending.slice(0, count);
    const first = this.#acked;
    const final = this.#final && count === this.#pending.length;
    let result: FlushResult;
    try {
      result = await appendToRedisLog(this.#options.redis, this.#options.keys, this.#options.writer, first, entries, {
        final,
        ttlMs: this.#ttlMs,
      });
    } catch {
      this.#inFlight = false;
      this.#retry();
      return;
    }
    this.#inFlight = false;
    this.#failingSince = undefined;
    this.#failures = 0;
    if (result.status !== 'OK') {
      this.#finish(result.status);
      return;
    }
    this.#lastFlushAt = Date.now();
    if (result.cancel) this.#options.onCancel?.();
    const written = Math.min(Math.max(0, result.next - first), this.#pending.length);
    for (const entry of this.#pending.splice(0, written)) this.#pendingBytes -= entry.data.length;
    this.#acked += written;
    this.#wakeWaiters();
    const again = this.#again;
    this.#again = false;
    if (this.#final && this.#pending.length === 0 && !again) {
      // Everything is in Redis; a later time to live goes through the log's expiry of ended turns.
      this.#stopped = true;
      clearTimeout(this.#timer);
      this.#options.onDone?.();
      return;
    }
    if (again || (this.#pending.length > 0 && this.#due())) this.flush();
    else if (this.#pending.length > 0) this.#timer ??= setTimeout(() => this.flush(), this.#options.windowMs);
  }

  /** Whether what is pending goes now rather than at the end of the window. */
  #due(): boolean {
    return (
      this.#final || this.#options.windowMs === 0 || this.#pending.length >= MAX_FLUSH_ENTRIES || this.#pendingBytes >= MAX_FLUSH_BYTES
    );
  }

  /** Tries again later, unless Redis has failed this turn for longer than `giveUpMs`. */
  #retry(): void {
    const now = Date.now();
    this.#failingSince ??= now;
    if (now - this.#failingSince >= this.#options.giveUpMs) {
      this.#finish('GAVE_UP');
      return;
    }
    const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.#failures++);
    this.#timer = setTimeout(() => this.flush(), delay);
  }

  #finish(reason: 'MISSING' | 'FENCED' | 'GAP' | 'GAVE_UP', tell = true): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    const lost = this.#pending.length > 0;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (tell && (reason !== 'GAVE_UP' || lost)) this.#options.onStopped?.(reason);
    this.#options.onDone?.();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  #wakeWaiters(): void {
    if (this.#waiters.length === 0) return;
    const still: SettleWaiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.upTo <= this.#acked) waiter.resolve();
      else still.push(waiter);
    }
    this.#waiters = still;
  }
}
