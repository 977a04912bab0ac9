import { formatEventId } from '../protocol/event-id.js';
import type { TurnEntry } from '../turns/turn-types.js';

// The SSE text of the stream's events: written here only. The turn layer hands out typed entries.

/**
 * One event's SSE block: its `data:` line, then its `id:` line, then the blank line that dispatches it.
 * The id comes last on purpose: `@microsoft/fetch-event-source` and `eventsource` 2.x take an id as soon
 * as they read its line, so with the id first a connection cut inside an event would make them resume
 * after an event they never received.
 */
export function sseBlock(id: string, data: string): string {
  return `data: ${data}\nid: ${id}\n\n`;
}

/** A turn entry's SSE block, with the id `<turn_id>/<position>`. */
export function entryBlock(turnId: string, entry: TurnEntry): string {
  return sseBlock(formatEventId(turnId, entry.position), entry.data);
}

/** An ended turn's SSE text and where each entry's block starts in it. */
export interface FramedLog {
  text: string;
  offsets: Uint32Array;
}

/** Keyed by the ended log's array as the log handed it out, so the text goes when every holder of that array lets go of it. */
const framedLogs = new WeakMap<readonly TurnEntry[], FramedLog>();

/**
 * The SSE text of an ended turn's whole log, framed on its first replay and shared by every later
 * reader given the same array: a resume then costs one slice.
 */
export function framedLog(turnId: string, entries: readonly TurnEntry[]): FramedLog {
  let framed = framedLogs.get(entries);
  if (framed) return framed;
  const offsets = new Uint32Array(entries.length);
  const parts = new Array<string>(entries.length);
  let length = 0;
  for (let index = 0; index < entries.length; index++) {
    offsets[index] = length;
    parts[index] = entryBlock(turnId, entries[index]!);
    length += parts[index]!.length;
  }
  framed = { text: parts.join(''), offsets };
  framedLogs.set(entries, framed);
  return framed;
}
