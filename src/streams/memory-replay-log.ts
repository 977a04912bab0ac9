import { ReplayLogEvicted, type LogEntry, type LogSnapshot, type NewLogEntry, type ReplayLog } from './replay-log.js';

interface TurnLog {
  /** The entries' wire JSON by position, and their token indexes (NO_TOKEN for other events): no object per entry to keep. */
  data: string[];
  tokenIndexes: number[];
  /** An ended log's entries as objects, built on its first snapshot and handed to every later caller. */
  snapshot: readonly LogEntry[] | undefined;
  ended: boolean;
  /** What this log holds, as `entryBytes` counts it. */
  bytes: number;
  /** Set once the log has left memory (evicted, expired or closed): its waiting readers then stop. */
  dropped: boolean;
  /** Readers waiting for the next append, woken all at once. */
  waiters: Set<() => void>;
  expiry: NodeJS.Timeout | undefined;
}

/** Options of the memory replay log. */
export interface MemoryReplayLogOptions {
  /** The most bytes the logs may hold before ended turns leave memory, oldest first (`REPLAY_LOG_MAX_BYTES`); 0: no limit. */
  maxBytes?: number;
}

/** The most entries one read hands out at once. */
const MAX_BATCH = 256;
/** What an entry costs besides its text: the string's header and its slots (text, token index), rounded up. */
const ENTRY_OVERHEAD_BYTES = 40;
/** What an ended log's entry costs as an object once a snapshot has built it (the object and its slot). */
const SNAPSHOT_ENTRY_BYTES = 32;
/** The token index kept for an entry that is not a token. */
const NO_TOKEN = -1;
/** What `settled` answers: this log's entries are as durable as they get once appended. */
const SETTLED = Promise.resolve();

/**
 * The heap an entry is counted for: two bytes per UTF-16 unit plus a fixed overhead. V8 keeps ASCII
 * text in one byte per character, so for ASCII the second byte pays for the framed copy that
 * readers of an ended turn share (server/sse-framing.ts); for other text it is the string itself.
 */
export function entryBytes(data: string): number {
  return 2 * data.length + ENTRY_OVERHEAD_BYTES;
}

/**
 * The replay log held in this process's memory: the default when `REDIS_URL` is not set. What it
 * holds is capped by `maxBytes`: past it, the logs of ended turns leave memory, the oldest ended
 * first (their readers resync from the store). A generating turn's log is never dropped, since its
 * readers follow it live; its size is bounded by `MAX_OUTPUT_TOKENS` and the number of such turns by
 * `MAX_GENERATING_TURNS_PER_CLIENT`.
 */
export class MemoryReplayLog implements ReplayLog {
  readonly #logs = new Map<string, TurnLog>();
  /** The ended turns, in the order they ended: the first goes first when the budget is exceeded. */
  readonly #endedOrder = new Set<string>();
  readonly #maxBytes: number;
  #bytes = 0;
  #closed = false;

  readonly backend = 'memory';

  constructor(options: MemoryReplayLogOptions = {}) {
    this.#maxBytes = options.maxBytes || Number.POSITIVE_INFINITY;
  }

  async ping(): Promise<void> {}

  open(turnId: string): void {
    if (!this.#logs.has(turnId)) {
      this.#logs.set(turnId, {
        data: [],
        tokenIndexes: [],
        snapshot: undefined,
        ended: false,
        bytes: 0,
        dropped: false,
        waiters: new Set(),
        expiry: undefined,
      });
    }
  }

  append(turnId: string, { data, tokenIndex, final = false }: NewLogEntry): number {
    const log = this.#logs.get(turnId);
    if (!log) throw new Error(`replay log of turn ${turnId} is not open`);
    if (log.ended) throw new Error(`replay log of turn ${turnId} has already ended`);
    const position = log.data.length;
    log.data.push(data);
    log.tokenIndexes.push(tokenIndex ?? NO_TOKEN);
    log.ended = final;
    this.#count(log, entryBytes(data));
    if (final) this.#endedOrder.add(turnId);
    this.#wake(log);
    if (this.#bytes > this.#maxBytes) this.#evict();
    return position;
  }

  /** Adds what a log now holds more to its count and the total. */
  #count(log: TurnLog, bytes: number): void {
    log.bytes += bytes;
    this.#bytes += bytes;
  }

  async *read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<readonly LogEntry[]> {
    const log = this.#logs.get(turnId);
    if (!log) return;
    let position = from;
    for (;;) {
      if (signal?.aborted) return;
      // A log that left memory before this reader reached its end: the reader must not just stop.
      if (log.dropped) {
        if (this.#closed) return;
        throw new ReplayLogEvicted(turnId);
      }
      if (position < log.data.length) {
        // What there is, in batches: a reader that fell behind catches up in few writes, with bounded memory.
        const entries = entriesOf(log, position, Math.min(position + MAX_BATCH, log.data.length));
        const last = log.ended && position + entries.length === log.data.length;
        yield entries;
        position += entries.length;
        if (last) return;
        continue;
      }
      if (log.ended) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        // A reader that leaves while waiting takes itself off the list at once.
        const onAbort = () => {
          log.waiters.delete(wake);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        log.waiters.add(wake);
      });
    }
  }

  snapshot(turnId: string): Promise<LogSnapshot | undefined> {
    const log = this.#logs.get(turnId);
    if (!log) return Promise.resolve(undefined);
    if (!log.ended) return Promise.resolve({ entries: entriesOf(log, 0, log.data.length), ended: false });
    // An ended log never changes again: its entries are built once, for every caller, and count toward the budget.
    if (!log.snapshot) {
      log.snapshot = entriesOf(log, 0, log.data.length);
      this.#count(log, SNAPSHOT_ENTRY_BYTES * log.data.length);
    }
    return Promise.resolve({ entries: log.snapshot, ended: true });
  }

  settled(_turnId: string): Promise<void> {
    return SETTLED;
  }

  /** How many turns' logs are held now. */
  get size(): number {
    return this.#logs.size;
  }

  /** What the held logs take, as `entryBytes` counts it. */
  get bytes(): number {
    return this.#bytes;
  }

  has(turnId: string): Promise<boolean> {
    return Promise.resolve(this.holds(turnId));
  }

  /** Whether the log of this turn is held now (`has`, answered at once, for a log built on this one). */
  holds(turnId: string): boolean {
    return this.#logs.has(turnId);
  }

  expire(turnId: string, ttlMs: number): void {
    const log = this.#logs.get(turnId);
    if (!log) return;
    clearTimeout(log.expiry);
    log.expiry = setTimeout(() => this.#drop(turnId), ttlMs);
    log.expiry.unref();
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const turnId of [...this.#logs.keys()]) this.#drop(turnId);
    return SETTLED;
  }

  /** Drops ended turns' logs, the oldest ended first, until what is held fits the budget again. */
  #evict(): void {
    for (const turnId of this.#endedOrder) {
      if (this.#bytes <= this.#maxBytes) return;
      this.#drop(turnId);
    }
  }

  #drop(turnId: string): void {
    const log = this.#logs.get(turnId);
    if (!log) return;
    clearTimeout(log.expiry);
    this.#logs.delete(turnId);
    this.#endedOrder.delete(turnId);
    this.#bytes -= log.bytes;
    log.dropped = true;
    // Readers still replaying it must not keep what the budget just let go.
    log.data = [];
    log.tokenIndexes = [];
    log.snapshot = undefined;
    this.#wake(log);
  }

  #wake(log: TurnLog): void {
    if (log.waiters.size === 0) return;
    const waiters = log.waiters;
    log.waiters = new Set();
    for (const wake of waiters) wake();
  }
}

/** The entries of a log from position `from` to `to` (excluded). */
function entriesOf(log: TurnLog, from: number, to: number): LogEntry[] {
  const entries = new Array<LogEntry>(to - from);
  for (let position = from; position < to; position++) {
    const tokenIndex = log.tokenIndexes[position]!;
    entries[position - from] = { position, data: log.data[position]!, tokenIndex: tokenIndex === NO_TOKEN ? undefined : tokenIndex };
  }
  return entries;
}
