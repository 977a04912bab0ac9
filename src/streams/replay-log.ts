/** One event of a turn's log: its position (0, 1, 2, …) and its wire JSON. */
export interface LogEntry {
  position: number;
  data: string;
}

/** Consecutive entries read at once: `data[i]` is at position `first + i`. Readers write a batch in one go. */
export interface LogBatch {
  first: number;
  data: readonly string[];
}

/**
 * A turn's replay log: every event a generation produces, readable by any number of readers from
 * any position while the generation writes. Kept to what Redis Streams can do too (append, read
 * from a position, block for new entries, expire).
 */
export interface ReplayLog {
  /** Creates an empty log for a new turn, so readers can wait on it before its first event. */
  open(turnId: string): void;
  /** Appends an event; `final` marks the turn's last one (readers stop after it). Returns its position. */
  append(turnId: string, data: string, final?: boolean): number;
  /**
   * Yields the entries from `from` on, in batches of whatever is there, then follows new ones until the
   * final entry or the signal aborts; nothing for a turn it does not hold. Throws `ReplayLogEvicted` if
   * the log leaves memory before the reader reached its final entry.
   */
  read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<LogBatch>;
  /**
   * Every entry of a turn whose log has ended, as one array that stays the same object for as long as
   * the log is held (readers may cache what they derive from it), or undefined while it is generating.
   */
  ended(turnId: string): readonly string[] | undefined;
  /** Whether the log of this turn is still held. */
  has(turnId: string): boolean;
  /** Forgets a turn's log after `ttlMs` (again from now if called again); a log may also leave earlier to keep a memory budget, an ended one only. */
  expire(turnId: string, ttlMs: number): void;
  /** Releases everything. */
  close(): void;
}

/**
 * Thrown by `read` when a turn's log leaves memory (evicted to keep the byte budget, or expired)
 * before the reader reached its final entry: the reader then gets the turn from the store instead.
 */
export class ReplayLogEvicted extends Error {
  override name = 'ReplayLogEvicted';
  readonly turnId: string;
  constructor(turnId: string) {
    super(`the replay log of turn ${turnId} left memory before its reader was done`);
    this.turnId = turnId;
  }
}
