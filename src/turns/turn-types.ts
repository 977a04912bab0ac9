import type { Logger } from '../observability/logger.js';
import type { ConversationStore } from '../store/conversation-store.js';
import type { ReplayLog } from '../streams/replay-log.js';
import type { ChatMessage, ChatModel } from '../model/chat-model.js';
import type { HistoryBudget } from './history.js';
import type { PendingOutcomes } from './pending-outcomes.js';
import type { TurnObserver, TurnResult } from './turn-generation.js';
import type { EventPosition } from '../protocol/event-id.js';
import type { TurnControl } from '../streams/turn-control.js';

// The shapes the turn manager takes and gives, apart from its workings (turn-manager.ts).

/** What a turn is started with. */
export interface StartTurnInput {
  message: string;
  contextId?: string | undefined;
  /** Client-managed context, used instead of the stored conversation. */
  history?: ChatMessage[] | undefined;
  clientMessageId?: string | undefined;
  /** Instructions for this turn only, instead of the configured ones (the OpenAI-compatible API's system message). */
  instructions?: string | undefined;
  /** Whose conversation this is: a digest of the caller's API key, or null when keys are off. */
  owner?: string | null;
  /**
   * Called before a new turn begins (never for an attach or a resume): throws to refuse it, as a rate
   * limit does. What it returns is called once, when that turn's generation has ended (or failed to start).
   */
  admit?: () => Promise<(() => void) | void> | (() => void) | void;
}

/** A turn as a request sees it: new, or an existing one it attached to. */
export interface TurnHandle {
  turnId: string;
  contextId: string;
  model: string;
  /** True when the request joined a turn that already existed. */
  resumed: boolean;
  /** Settles when the turn ends: the answer, or the ChatWaitError that ended it. */
  done: Promise<TurnResult>;
}

/**
 * Where a streaming request starts reading, as the server parsed it from the request: nowhere in
 * particular (start a turn, or attach to this message's running one from its first event), after a
 * token index (the original ChatWait resume, `last_token_index` > 0), or after an event id
 * (`Last-Event-ID`).
 */
export type ResumePoint =
  { kind: 'none' } | { kind: 'token_index'; lastTokenIndex: number } | { kind: 'event_id'; turnId: string; position: EventPosition };

/** One event as a reader sends it: its log position (`resync` for what replaces a turn that left the log), its JSON, and a token's index. */
export interface TurnEntry {
  readonly position: number | 'resync';
  readonly data: string;
  readonly tokenIndex?: number | undefined;
}

/**
 * Entries a reader sends at once: `entries` from index `start` on. `shared` marks an ended turn's whole
 * log, the same array for every reader of it while the log holds it: worth framing once.
 */
export interface ReplayBatch {
  entries: readonly TurnEntry[];
  start: number;
  shared: boolean;
}

/** A connection's view of a turn: its events from where the connection starts reading. */
export interface TurnStream {
  turnId: string;
  contextId: string;
  model: string;
  resumed: boolean;
  /**
   * Where this connection's `start` event's id points: `start` on a fresh read, and on a resume the
   * position the client already holds, so an EventSource that drops again right away resumes from
   * there instead of from the beginning.
   */
  startPosition: EventPosition;
  /** The events in batches: whatever was there when the reader looked. */
  events: AsyncIterable<ReplayBatch>;
}

/** Options of the turn manager. */
export interface TurnManagerOptions {
  model: ChatModel;
  store: ConversationStore;
  log: ReplayLog;
  logger: Logger;
  history: HistoryBudget;
  responseTimeoutMs: number;
  streamTtlMs: number;
  observer?: TurnObserver | undefined;
  /** Where outcomes the store refused wait for it to recover. */
  pendingOutcomes?: PendingOutcomes | undefined;
  /** How cancels reach turns other instances generate (unset: one process, cancels are local). */
  control?: TurnControl | undefined;
}
