import type { Redis } from 'ioredis';
import { ReplayLogEvicted, type LogEntry } from './replay-log.js';
import { decodeRange, streamId, type DecodedEntries, type RedisLogKeys } from './redis-log-format.js';
import type { RedisTailHub, TailListener } from './redis-tail-hub.js';

/** What a remote reader needs from its log. */
export interface RemoteReadContext {
  redis: Redis;
  hub: RedisTailHub;
  /** How often a waiting reader reads the stream again anyway (a lost message, an expired log). */
  pollMs: number;
  /** Whether the log is closing: readers then hand out what the stream holds and end quietly. */
  closing(): boolean;
  /** Called with a function that wakes this reader when the log closes; returns how to stop being woken. */
  onClose(wake: () => void): () => void;
  /** Test-only (see RedisReplayLogOptions.rangeReadHook): awaited before each range read and after its reply. */
  rangeReadHook?: ((step: 'before' | 'after') => Promise<void> | void) | undefined;
}

/** The most entries one range read asks for. */
const RANGE_COUNT = 512;
/** How long a reader that has begun keeps trying while Redis fails, before it fails too. */
const READ_FAILURES_MS = 10_000;
/** How long it waits between two tries then. */
const READ_RETRY_MS = 250;
/** The most live messages a reader keeps while it is busy; past that it drops them and reads the stream instead. */
const MAX_INBOX = 64;

/** What a range read found: the entries, whether the log exists at all and whether its final entry is written. */
export interface RangeRead extends DecodedEntries {
  exists: boolean;
  sealed: boolean;
}

/** Up to `count` entries from position `from`, and the state of the turn's log (one round trip: both are pipelined). */
export async function readRange(redis: Redis, keys: RedisLogKeys, from: number, count = RANGE_COUNT): Promise<RangeRead> {
  const [[next, sealed], reply] = await Promise.all([
    redis.hmget(keys.meta, 'next', 'sealed'),
    redis.xrange(keys.log, streamId(from), '+', 'COUNT', count) as Promise<[string, string[]][]>,
  ]);
  return { ...decodeRange(reply), exists: next !== null || reply.length > 0, sealed: sealed === '1' };
}

/** What a reader has received on the live channel and not handled yet. */
class Inbox implements TailListener {
  messages: (DecodedEntries | undefined)[] = [];
  /** Set when the reader must read the stream rather than trust the messages (reconnect, overflow, unreadable message). */
  repair = false;
  #wake: (() => void) | undefined;

  deliver(entries: DecodedEntries | undefined): void {
    if (entries === undefined || this.messages.length >= MAX_INBOX) {
      this.messages = [];
      this.repair = true;
    } else this.messages.push(entries);
    this.wake();
  }

  reconnected(): void {
    this.repair = true;
    this.wake();
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Waits for a message, a wake-up or `ms`; resolves to whether it timed out. */
  wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(true), ms);
      const onAbort = () => done(false);
      const done = (timedOut: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#wake = undefined;
        resolve(timedOut);
      };
      this.#wake = () => done(false);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * A turn's entries from `from` on, read from Redis on an instance that does not produce it, then
 * followed live until the final entry (scale-out.md §6.9): subscribe first, then read the backlog
 * from the stream, then deliver strictly by position: what is below the next position is dropped, a
 * message that jumps ahead makes the reader read the missing range from the stream first. Entries
 * are dense, so there can be no gap and nothing twice. `held`: the reader already knows the log
 * existed, so a log that is not there means it left (ReplayLogEvicted) rather than never was.
 */
export async function* readRemote(
  context: RemoteReadContext,
  keys: RedisLogKeys,
  turnId: string,
  from: number,
  signal: AbortSignal | undefined,
  held: boolean,
): AsyncIterable<readonly LogEntry[]> {
  const inbox = new Inbox();
  const stopWaking = context.onClose(() => inbox.wake());
  const unfollow = await context.hub.follow(keys.live, inbox);
  let next = from;
  let known = held;
  let ended = false;
  let failingSince: number | undefined;
  try {
    let fromStream = true;
    while (!ended) {
      if (signal?.aborted) return;
      const closing = context.closing();
      if (fromStream || inbox.repair || closing) {
        fromStream = false;
        inbox.repair = false;
        let read: RangeRead;
        try {
          await context.rangeReadHook?.('before');
          read = await readRange(context.redis, keys, next);
          await context.rangeReadHook?.('after');
          failingSince = undefined;
        } catch (error) {
          // A reader that has begun rides out a short Redis outage (the producer's flushes wait too); a new one fails at once.
          failingSince ??= Date.now();
          if (!known || closing || Date.now() - failingSince > READ_FAILURES_MS) throw error;
          fromStream = true;
          await inbox.wait(READ_RETRY_MS, signal);
          continue;
        }
        if (!read.exists) {
          if (known && !closing) throw new ReplayLogEvicted(turnId);
          return;
        }
        known = true;
        if (read.entries.length > 0) {
          next = read.entries.at(-1)!.position + 1;
          ended = read.finalPosition !== undefined;
          yield read.entries;
        }
        // A full range may have more behind it; a closing log hands out what it holds, then stops.
        if (read.entries.length === RANGE_COUNT && !ended) fromStream = true;
        // Asked from past the end of an ended log: there is nothing more to come.
        else if (closing || (read.sealed && read.entries.length === 0)) return;
        continue;
      }
      const message = inbox.messages.shift();
      if (message) {
        const { entries, finalPosition } = message;
        const first = entries[0]?.position ?? next;
        if (first > next) {
          // A message ahead of what this reader has: the entries between are in the stream.
          fromStream = true;
          continue;
        }
        const fresh = entries.slice(next - first);
        if (fresh.length === 0) continue;
        next += fresh.length;
        ended = finalPosition !== undefined && finalPosition < next;
        yield fresh;
        continue;
      }
      // Nothing for a while: read the stream anyway, for a message lost or a log that expired.
      if (await inbox.wait(context.pollMs, signal)) fromStream = true;
    }
  } finally {
    unfollow();
    stopWaking();
  }
}
