import type { LogEntry } from './replay-log.js';

// How a turn's log is laid out in Redis (scale-out.md §6.4): its entries in a Stream whose ids are
// derived from the log positions, its state in a hash, its live entries published on a channel.
// Every key of a turn carries the turn id as a hash tag, so a turn's keys share one Cluster slot.

/** The Redis names of one turn's log. */
export interface RedisLogKeys {
  /** The Stream of entries: id `0-<position + 1>`, fields `d` (wire JSON), `i` (token index, tokens only), `f` (final entry). */
  log: string;
  /** The hash of the log's state: `owner` (the writing log's id), `next` (the next position), `sealed` (final entry written). */
  meta: string;
  /** The channel each flush publishes its entries on, for readers on other instances. */
  live: string;
}

/** The key names of a turn's log under a prefix (`cw:` by default). */
export function redisLogKeys(prefix: string, turnId: string): RedisLogKeys {
  const base = `${prefix}t:{${turnId}}`;
  return { log: `${base}:log`, meta: `${base}:meta`, live: `${base}:live` };
}

/**
 * The Stream id of a position. Redis refuses an id not above the stream's last, so an entry written
 * twice (a retried flush) can never be there twice, and `0-0`, which Redis refuses, is never used.
 */
export function streamId(position: number): string {
  return `0-${position + 1}`;
}

/** Entries as Redis or a live message hands them over, with where the final entry is, if among them. */
export interface DecodedEntries {
  entries: LogEntry[];
  /** The position of the log's final entry when it is among these entries. */
  finalPosition: number | undefined;
}

type StreamReply = [id: string, fields: string[]][];

/** The entries of an XRANGE reply. */
export function decodeRange(reply: StreamReply): DecodedEntries {
  const entries = new Array<LogEntry>(reply.length);
  let finalPosition: number | undefined;
  for (let index = 0; index < reply.length; index++) {
    const [id, fields] = reply[index]!;
    const position = Number(id.slice(id.indexOf('-') + 1)) - 1;
    let data = '';
    let tokenIndex: number | undefined;
    for (let field = 0; field < fields.length; field += 2) {
      const name = fields[field];
      if (name === 'd') data = fields[field + 1]!;
      else if (name === 'i') tokenIndex = Number(fields[field + 1]);
      else if (name === 'f') finalPosition = position;
    }
    entries[index] = { position, data, tokenIndex };
  }
  return { entries, finalPosition };
}

/** The entries one flush publishes: its first position, then each entry's data, token index (or null) and final flag. */
type LiveMessage = [first: number, entries: [data: string, tokenIndex: number | null, final: 0 | 1][]];

/** The message a flush of entries from position `first` publishes. */
export function encodeLive(first: number, entries: readonly { data: string; tokenIndex: number | undefined }[], final: boolean): string {
  const last = entries.length - 1;
  const message: LiveMessage = [
    first,
    entries.map((entry, index) => [entry.data, entry.tokenIndex ?? null, final && index === last ? 1 : 0]),
  ];
  return JSON.stringify(message);
}

/** The entries of a published message; undefined if it is not one (readers then repair from the stream). */
export function decodeLive(message: string): DecodedEntries | undefined {
  try {
    const [first, raw] = JSON.parse(message) as LiveMessage;
    if (!Number.isInteger(first) || !Array.isArray(raw)) return undefined;
    let finalPosition: number | undefined;
    const entries = raw.map(([data, tokenIndex, final], index): LogEntry => {
      if (final === 1) finalPosition = first + index;
      return { position: first + index, data, tokenIndex: tokenIndex ?? undefined };
    });
    return { entries, finalPosition };
  } catch {
    return undefined;
  }
}
