/** One event of a turn's log: its position (0, 1, 2, …), its wire JSON and, for a `token` event, the token's index. */
export interface LogEntry {
  readonly position: number;
  readonly data: string;
  /** The `token_index` of a `token` event, so readers resuming by token index never parse the JSON. */
  readonly tokenIndex: number | undefined;
}

/** What is appended: the event's wire JSON, its token index if it is a token, and whether it is the turn's last event. */
export interface NewLogEntry {
  data: string;
  tokenIndex?: number | undefined;
  /** The turn's last event (`end` or `error`): readers stop after it and nothing may follow. */
  final?: boolean | undefined;
}

/** What a turn's log holds at one moment. */
export interface LogSnapshot {
  /** Every entry so far, from position 0. */
  entries: readonly LogEntry[];
  /** True once the final entry is among them: the log no longer changes. */
  ended: boolean;
}

/**
 * A turn's replay log: every event a generation produces, readable by any number of readers from
 * any position while the generation writes. Shaped so a log kept in Redis fits (scale-out.md §6):
 * the single producer assigns positions, so `open`, `append` and `expire` answer at once (a remote
 * log sends the writes behind them); whatever needs the log's state is asynchronous.
 */
export interface ReplayLog {
  /** True when every instance reads this log (Redis): a turn another instance generates can be read here too. */
  readonly shared?: boolean;
  /** Creates an empty log for a new turn, so readers can wait on it before its first event. */
  open(turnId: string): void;
  /** Appends an event and returns its position; after a `final` one the log refuses appends. */
  append(turnId: string, entry: NewLogEntry): number;
  /**
   * Yields the entries from `from` on, in batches of whatever is there, then follows new ones until the
   * final entry or the signal aborts; nothing for a turn it does not hold. Throws `ReplayLogEvicted` if
   * the log leaves (evicted, expired) before the reader reached its final entry.
   */
  read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<readonly LogEntry[]>;
  /**
   * Every entry the log of a turn holds now, and whether it has ended; undefined for a turn it does
   * not hold. The snapshot of an ended log is complete: a caller may keep what it derives from it.
   */
  snapshot(turnId: string): Promise<LogSnapshot | undefined>;
  /** Whether the log of this turn is still held. */
  has(turnId: string): Promise<boolean>;
  /**
   * Resolves once every entry appended to this turn so far is as durable as the log keeps entries
   * (for a remote log: acknowledged by it), or the log has given up on them; it never rejects, since
   * a log that cannot be written must not fail the turn (the store holds its outcome).
   */
  settled(turnId: string): Promise<void>;
  /** Forgets a turn's log after `ttlMs` (again from now if called again); a log may also leave earlier to keep a memory budget, an ended one only. */
  expire(turnId: string, ttlMs: number): void;
  /** Makes what was appended durable, ends every reader quietly and releases everything. */
  close(): Promise<void>;
}

/**
 * Thrown by `read` when a turn's log leaves (evicted to keep the byte budget, or expired) before the
 * reader reached its final entry: the reader then gets the turn from the store instead.
 */
export class ReplayLogEvicted extends Error {
  override name = 'ReplayLogEvicted';
  readonly turnId: string;
  constructor(turnId: string) {
    super(`the replay log of turn ${turnId} left memory before its reader was done`);
    this.turnId = turnId;
  }
}
