import type { ToolStep, TurnRecord } from '../store/conversation-store.js';
import { ReplayLogEvicted, type LogEntry, type ReplayLog } from '../streams/replay-log.js';
import { publicContextId } from './conversation-keys.js';
import { StoreUnavailableError } from '../errors.js';
import { endEventData, errorEventData, resyncEventData, sseBlock } from '../protocol/wire-events.js';
import type { FinishReason } from '../protocol/turn.js';

/** One event ready for the wire: its SSE id and its JSON. */
export interface WireEvent {
  id: string;
  data: string;
}

/**
 * What a reader sends at once: events, or (replaying an ended turn) their SSE blocks already framed
 * as `data: …\nid: …\n\n` text, shared by every reader of that turn.
 */
export type WireBatch = readonly WireEvent[] | string;

/** An ended turn's SSE text and where each position's block starts in it, built on its first replay. */
interface Framed {
  text: string;
  offsets: Uint32Array;
}

/** Keyed by the log's own array of an ended turn, so an entry goes when the log expires. */
const framedLogs = new WeakMap<readonly string[], Framed>();

const TOKEN_PREFIX = '{"token":';
const TOKEN_INDEX = /"token_index":(\d+)/;

/**
 * A turn's log events from a position, with their SSE ids `<turn_id>/<position>`. A reader already
 * past the end gets the final event again: a resume is never answered with silence.
 */
export async function* fromPosition(log: ReplayLog, turnId: string, from: number, signal?: AbortSignal): AsyncIterable<WireBatch> {
  const ended = log.ended(turnId);
  if (ended && ended.length > 0) {
    // An ended turn is replayed from text framed once for all its readers: a resume costs one slice.
    const framed = framedOf(turnId, ended);
    yield framed.text.slice(framed.offsets[Math.min(from, ended.length - 1)]);
    return;
  }
  let sent = false;
  for await (const batch of log.read(turnId, from, signal)) {
    sent = true;
    yield toWireEvents(turnId, batch.first, batch.data);
  }
  // Asked from past the end of a turn that was still running, and it ended short of there: the client still gets how it ended.
  const final = sent || signal?.aborted ? undefined : log.ended(turnId);
  if (final && final.length > 0) yield [{ id: `${turnId}/${final.length - 1}`, data: final.at(-1)! }];
}

function framedOf(turnId: string, entries: readonly string[]): Framed {
  let framed = framedLogs.get(entries);
  if (framed) return framed;
  const offsets = new Uint32Array(entries.length);
  const parts = new Array<string>(entries.length);
  let length = 0;
  for (let position = 0; position < entries.length; position++) {
    offsets[position] = length;
    parts[position] = sseBlock(`${turnId}/${position}`, entries[position]!);
    length += parts[position]!.length;
  }
  framed = { text: parts.join(''), offsets };
  framedLogs.set(entries, framed);
  return framed;
}

function toWireEvents(turnId: string, first: number, data: readonly string[]): WireEvent[] {
  const events = new Array<WireEvent>(data.length);
  for (let index = 0; index < data.length; index++) events[index] = { id: `${turnId}/${first + index}`, data: data[index]! };
  return events;
}

/**
 * A turn's log events from token index `n` (the original ChatWait resume): tokens before `n` are
 * skipped, and so are other events until token `n - 1` has gone by, so nothing the client holds is sent again.
 */
export async function* fromTokenIndex(log: ReplayLog, turnId: string, n: number, signal?: AbortSignal): AsyncIterable<WireBatch> {
  let passed = n === 0;
  let last: LogEntry | undefined;
  for await (const batch of log.read(turnId, 0, signal)) {
    let start = 0;
    for (; !passed && start < batch.data.length; start++) {
      const entry = { position: batch.first + start, data: batch.data[start]! };
      last = entry;
      const index = tokenIndexOf(entry);
      if (index === undefined || index < n - 1) continue;
      passed = true;
      if (index !== n - 1) break;
    }
    if (passed && start < batch.data.length) yield toWireEvents(turnId, batch.first + start, batch.data.slice(start));
    if (batch.data.length > 0) last = { position: batch.first + batch.data.length - 1, data: batch.data.at(-1)! };
  }
  // Asked for more tokens than the turn has: the client still gets how it ended.
  if (!passed && last && !signal?.aborted) yield [{ id: `${turnId}/${last.position}`, data: last.data }];
}

/**
 * A reader's events from the replay log; if the turn's log has left memory (evicted to keep the byte
 * budget, or expired) before the reader got its end, `resync` and `end` from the store instead: never
 * silence. Only an ended turn's log leaves memory, and its outcome is stored before its final event.
 */
export async function* orResync(
  events: AsyncIterable<WireBatch>,
  log: ReplayLog,
  turnId: string,
  contextId: string,
  getRecord: () => Promise<TurnRecord | undefined>,
): AsyncIterable<WireBatch> {
  try {
    if (log.has(turnId)) {
      yield* events;
      return;
    }
  } catch (error) {
    if (!(error instanceof ReplayLogEvicted)) throw error;
  }
  // The `resync` id makes a reconnect ask the store again.
  const failed = (code: string, message: string, retryable: boolean): WireEvent[] => [
    { id: `${turnId}/resync`, data: errorEventData(contextId, turnId, code, message, retryable) },
  ];
  let record: TurnRecord | undefined;
  try {
    record = await getRecord();
  } catch (error) {
    yield error instanceof StoreUnavailableError
      ? failed('STORE_UNAVAILABLE', 'The answer left memory and the conversation store cannot be read right now. Please reconnect in a moment.', true)
      : failed('INTERNAL_ERROR', 'Something went wrong while reading this answer. Please reconnect in a moment.', true);
    return;
  }
  yield record ? resyncFromRecord(record) : failed('NOT_FOUND', 'This turn no longer exists (its conversation may have been deleted).', false);
}

/**
 * The log position of token `tokenIndex`: its index plus the tool events before it (each step's
 * `tool_call`, and its `tool_result` once it had one). Without tools the two are equal.
 */
export function tokenPosition(tokenIndex: number, toolSteps: readonly ToolStep[]): number {
  let position = tokenIndex;
  for (const step of toolSteps) if (step.tokenOffset <= tokenIndex) position += step.output === null ? 1 : 2;
  return position;
}

/** The message of a turn that ended but whose outcome the store has not taken yet (a full disk...). */
export const OUTCOME_NOT_STORED =
  'This message has been answered, but the conversation store cannot record the outcome yet (its disk may be full). Please try again in a moment.';

/** `resync` with a stored answer, then its `end`: what a resume gets once the turn has left the replay log. */
export function resyncFromRecord(record: TurnRecord): WireEvent[] {
  if (record.status === 'streaming') {
    // Not generating, yet still `streaming` in the store: how it ended waits for the store to take it; `interrupted` would be untrue.
    // The id makes a reconnect ask for the stored outcome again.
    return [{ id: `${record.turnId}/resync`, data: errorEventData(publicContextId(record.contextId), record.turnId, 'STORE_UNAVAILABLE', OUTCOME_NOT_STORED, true) }];
  }
  const finishReason: FinishReason = record.status === 'complete' ? 'stop' : record.status;
  const tokenCount = record.tokenCount;
  const end = endEventData({
    contextId: publicContextId(record.contextId),
    turnId: record.turnId,
    finalOutput: record.answer,
    tokenCount,
    finishReason,
    usage: record.usage,
    timings: record.timings ?? { ttft_ms: null, total_ms: 0 },
    model: record.model,
  });
  return [
    { id: `${record.turnId}/resync`, data: resyncEventData(record.turnId, record.answer, tokenCount) },
    // The end came after every token and every tool event of the turn.
    { id: `${record.turnId}/${tokenPosition(tokenCount, record.toolSteps)}`, data: end },
  ];
}

function tokenIndexOf(entry: LogEntry): number | undefined {
  if (!entry.data.startsWith(TOKEN_PREFIX)) return undefined;
  // The token text comes before token_index and may itself contain the pattern, so search after it.
  const afterToken = entry.data.lastIndexOf('"token_index":');
  const match = TOKEN_INDEX.exec(entry.data.slice(afterToken));
  return match ? Number(match[1]) : undefined;
}
