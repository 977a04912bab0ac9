import type { ToolStep, TurnRecord } from '../store/conversation-store.js';
import { ReplayLogEvicted, ReplayLogUnavailable, type LogEntry, type ReplayLog } from '../streams/replay-log.js';
import { publicContextId } from './conversation-keys.js';
import { StoreUnavailableError } from '../errors.js';
import { endEventData, errorEventData, resyncEventData } from '../protocol/wire-events.js';
import type { FinishReason } from '../protocol/turn.js';
import type { ReplayBatch, TurnEntry } from './turn-types.js';

// Reading a turn for a connection: from its replay log while the log holds it, from the store once it
// has left. What comes out are typed entries; the server frames them (server/sse-framing.ts).

/** Where a token-index reader starts: the position the client already holds, and the batches after it. */
export interface TokenIndexReplay {
  startPosition: number | 'start';
  batches: AsyncIterable<ReplayBatch>;
}

/**
 * A turn's log entries from a position. A reader already past the end gets the final entry again: a
 * resume is never answered with silence. Throws `ReplayLogEvicted` when the log does not hold the turn
 * (or lets it go before its end), so `orResync` answers from the store.
 */
export async function* readFromPosition(log: ReplayLog, turnId: string, from: number, signal?: AbortSignal): AsyncIterable<ReplayBatch> {
  const snapshot = await log.snapshot(turnId);
  if (!snapshot) throw new ReplayLogEvicted(turnId);
  const { entries } = snapshot;
  if (snapshot.ended) {
    // The whole ended log, the same for every reader: the server frames it once and sends a slice.
    yield { entries, start: Math.min(from, entries.length - 1), shared: true };
    return;
  }
  let sent = from < entries.length;
  if (sent) yield { entries, start: from, shared: false };
  for await (const batch of log.read(turnId, Math.max(from, entries.length), signal)) {
    sent = true;
    yield { entries: batch, start: 0, shared: false };
  }
  if (sent || signal?.aborted) return;
  // Asked from past the end of a turn that was still running, and it ended short of there: the client still gets how it ended.
  const ended = await log.snapshot(turnId);
  if (!ended) throw new ReplayLogEvicted(turnId);
  if (ended.ended) yield { entries: ended.entries, start: ended.entries.length - 1, shared: true };
}

/**
 * A turn's log entries from token index `n` (the original ChatWait resume): tokens before `n` are
 * skipped, and so are other events until token `n - 1` has gone by, so nothing the client holds is
 * sent again. Undefined when the log does not hold the turn.
 */
export async function readFromTokenIndex(
  log: ReplayLog,
  turnId: string,
  n: number,
  signal?: AbortSignal,
): Promise<TokenIndexReplay | undefined> {
  if (n === 0) return { startPosition: 'start', batches: readFromPosition(log, turnId, 0, signal) };
  const snapshot = await log.snapshot(turnId);
  if (!snapshot) return undefined;
  const { entries, ended } = snapshot;
  const found = findToken(entries, n - 1, ended);
  if (ended) {
    // Asked for more tokens than the turn has: the client still gets how it ended.
    const start = found.next ?? entries.length - 1;
    return { startPosition: found.position, batches: listOf({ entries, start, shared: true }) };
  }
  // What the snapshot holds after token n - 1, then the live entries after the snapshot: no gap, nothing twice.
  const batches = prepend({ entries, start: found.next ?? entries.length }, log.read(turnId, entries.length, signal));
  return { startPosition: found.position, batches: afterToken(batches, n, found.next !== undefined, signal) };
}

/**
 * Where token `tokenIndex` is among a log's entries from position 0: `next`, the index of the first
 * entry after it (undefined if it is not there yet), and `position`, the log position the client
 * holds. A token not there yet is placed after every tool event so far, as the turn will write it.
 */
function findToken(entries: readonly LogEntry[], tokenIndex: number, ended: boolean): { next: number | undefined; position: number } {
  let others = 0;
  const last = ended ? entries.length - 1 : entries.length;
  for (let index = 0; index < last; index++) {
    const found = entries[index]!.tokenIndex;
    if (found === undefined) others++;
    else if (found >= tokenIndex)
      return { next: found === tokenIndex ? index + 1 : index, position: entries[index]!.position - (found - tokenIndex) };
  }
  return { next: undefined, position: tokenIndex + others };
}

/** The entries after token `n - 1` of batches read from where the client's tokens may still be ahead. */
async function* afterToken(
  batches: AsyncIterable<ReplayBatch>,
  n: number,
  passedAlready: boolean,
  signal?: AbortSignal,
): AsyncIterable<ReplayBatch> {
  let passed = passedAlready;
  let last: TurnEntry | undefined;
  for await (const batch of batches) {
    const { entries } = batch;
    let start = batch.start;
    for (; !passed && start < entries.length; start++) {
      const index = entries[start]!.tokenIndex;
      if (index === undefined || index < n - 1) continue;
      passed = true;
      if (index !== n - 1) break;
    }
    if (passed && start < entries.length) yield start === batch.start ? batch : { ...batch, start };
    if (entries.length > batch.start) last = entries.at(-1);
  }
  // Asked for more tokens than the turn has: the client still gets how it ended.
  if (!passed && last && !signal?.aborted) yield { entries: [last], start: 0, shared: false };
}

async function* prepend(
  first: { entries: readonly LogEntry[]; start: number },
  rest: AsyncIterable<readonly LogEntry[]>,
): AsyncIterable<ReplayBatch> {
  yield { ...first, shared: false };
  for await (const entries of rest) yield { entries, start: 0, shared: false };
}

/**
 * A reader's entries from the replay log; if the turn's log is not held or leaves (evicted to keep the
 * byte budget, or expired) before the reader got its end, or the log's Redis stays away, `resync` and
 * `end` from the store instead: never silence. Only an ended turn's log leaves in one process, and its
 * outcome is stored before its final event; with Redis, `getRecord` waits for the end of a turn still
 * generating on another instance (its log vanished with a Redis restarted empty).
 */
export async function* orResync(
  batches: AsyncIterable<ReplayBatch>,
  turnId: string,
  contextId: string,
  getRecord: () => Promise<TurnRecord | undefined>,
): AsyncIterable<ReplayBatch> {
  try {
    yield* batches;
    return;
  } catch (error) {
    // Redis away for longer than a reader rides out: the store has how the turn ended (or will have it).
    if (!(error instanceof ReplayLogEvicted || error instanceof ReplayLogUnavailable)) throw error;
  }
  // The `resync` position makes a reconnect ask the store again.
  const failed = (code: string, message: string, retryable: boolean): ReplayBatch =>
    entriesBatch([{ position: 'resync', data: errorEventData(contextId, turnId, code, message, retryable) }]);
  let record: TurnRecord | undefined;
  try {
    record = await getRecord();
  } catch (error) {
    yield error instanceof StoreUnavailableError
      ? failed(
          'STORE_UNAVAILABLE',
          'The answer left memory and the conversation store cannot be read right now. Please reconnect in a moment.',
          true,
        )
      : failed('INTERNAL_ERROR', 'Something went wrong while reading this answer. Please reconnect in a moment.', true);
    return;
  }
  yield record
    ? entriesBatch(resyncFromRecord(record))
    : failed('NOT_FOUND', 'This turn no longer exists (its conversation may have been deleted).', false);
}

/**
 * The log position of token `tokenIndex` from a stored turn's tool steps: its index plus the tool
 * events before it (each step's `tool_call`, and its `tool_result` once it had one).
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
export function resyncFromRecord(record: TurnRecord): TurnEntry[] {
  if (record.status === 'streaming') {
    // Not generating, yet still `streaming` in the store: how it ended waits for the store to take it; `interrupted` would be untrue.
    // The `resync` position makes a reconnect ask for the stored outcome again.
    return [
      {
        position: 'resync',
        data: errorEventData(publicContextId(record.contextId), record.turnId, 'STORE_UNAVAILABLE', OUTCOME_NOT_STORED, true),
      },
    ];
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
    { position: 'resync', data: resyncEventData(record.turnId, record.answer, tokenCount) },
    // The end came after every token and every tool event of the turn.
    { position: tokenPosition(tokenCount, record.toolSteps), data: end },
  ];
}

/** Entries a reader sends as they are (not an ended log's shared array). */
export function entriesBatch(entries: readonly TurnEntry[]): ReplayBatch {
  return { entries, start: 0, shared: false };
}

/** The batches of a reader that has them all at once. */
export async function* listOf(...batches: ReplayBatch[]): AsyncIterable<ReplayBatch> {
  yield* batches;
}
