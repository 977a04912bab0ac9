import { ChatWaitError, StoreUnavailableError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { TurnFencedError, type ConversationStore, type TurnOutcome } from '../store/conversation-store.js';

/** How often pending outcomes are offered to the store again, besides at each health check. */
const RETRY_INTERVAL_MS = 5000;
/** When a refused request may try again: each request that needs a pending outcome offers it to the store itself. */
const RETRY_AFTER_MS = 2000;

/** How a pending outcome is kept: what to store, and whom to tell once it is stored. */
export interface PendingOutcomeOptions {
  /** Why the store refused it: its code is what sends to the turn's conversation are refused with meanwhile. */
  refusal?: unknown;
  /** Called once the store has taken it (the turn's replay log, which ends with an error, can go). */
  onStored?: () => void;
}

/**
 * Outcomes of turns the store refused to record (a full disk, a read-only file, a database out of
 * reach), kept as they really ended and offered to the store again until it takes them, so no turn
 * stays `streaming` once the store works again. While any is pending, the store counts as failing in
 * `/health` and readiness.
 */
export class PendingOutcomes {
  readonly #store: ConversationStore;
  readonly #logger: Logger;
  readonly #retryIntervalMs: number;
  readonly #outcomes = new Map<string, { outcome: TurnOutcome; onStored: (() => void) | undefined }>();
  /** The store's latest refusal of a pending outcome. */
  #refusal: unknown;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<boolean> | undefined;
  /** Set by close(): the last flush at shutdown must not arm a retry against a store about to close. */
  #closed = false;

  constructor(store: ConversationStore, logger: Logger, retryIntervalMs = RETRY_INTERVAL_MS) {
    this.#store = store;
    this.#logger = logger;
    this.#retryIntervalMs = retryIntervalMs;
  }

  /** How many outcomes wait for the store. */
  get size(): number {
    return this.#outcomes.size;
  }

  /** Whether this turn's outcome waits here for the store. */
  has(turnId: string): boolean {
    return this.#outcomes.has(turnId);
  }

  /** Keeps an outcome the store refused, to be written as soon as it accepts writes again. */
  add(turnId: string, outcome: TurnOutcome, options: PendingOutcomeOptions = {}): void {
    this.#outcomes.set(turnId, { outcome, onStored: options.onStored });
    if (options.refusal !== undefined) this.#refusal = options.refusal;
    this.#schedule();
  }

  /**
   * What a request that needs a pending outcome stored first is refused with: the store's own
   * unavailability (503 STORE_UNAVAILABLE, or DEPENDENCY_UNAVAILABLE for a database out of reach), retryable.
   */
  refusal(): ChatWaitError {
    const refusal = this.#refusal;
    const code = refusal instanceof StoreUnavailableError && refusal.code === 'DEPENDENCY_UNAVAILABLE' ? refusal.code : 'STORE_UNAVAILABLE';
    return new ChatWaitError(
      code,
      'The previous answer in this conversation is not saved yet: the conversation store refuses writes right now. Please try again in a moment.',
      { cause: refusal, retryable: true, headers: { 'retry-after': String(Math.ceil(RETRY_AFTER_MS / 1000)) } },
    );
  }

  /** Offers every pending outcome to the store once; resolves true when none is left. */
  flush(): Promise<boolean> {
    this.#flushing ??= this.#flushOnce().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  /** Stops retrying in the background (at shutdown; a restart marks what is left interrupted). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #flushOnce(): Promise<boolean> {
    for (const [turnId, { outcome, onStored }] of [...this.#outcomes]) {
      try {
        await this.#store.finishTurn(turnId, outcome);
        this.#outcomes.delete(turnId);
        this.#logger.info({ turn_id: turnId, status: outcome.status }, 'stored the outcome of a turn the store had refused');
        onStored?.();
      } catch (error) {
        if (error instanceof TurnFencedError) {
          // Decided elsewhere meanwhile (another instance reaped it, or its conversation was deleted): nothing to store.
          this.#outcomes.delete(turnId);
          this.#logger.warn(
            { turn_id: turnId, status: outcome.status },
            'dropped the outcome of a turn the store no longer has generating',
          );
          continue;
        }
        // Still refused: the rest would be too, most likely; the next flush tries them all again.
        this.#refusal = error;
        break;
      }
    }
    this.#schedule();
    return this.#outcomes.size === 0;
  }

  #schedule(): void {
    if (this.#closed || this.#outcomes.size === 0 || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, this.#retryIntervalMs);
    // A pending write must not keep a process that is otherwise done alive.
    this.#timer.unref();
  }
}
