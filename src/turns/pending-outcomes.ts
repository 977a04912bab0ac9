import type { Logger } from '../observability/logger.js';
import type { ConversationStore, TurnOutcome } from '../store/conversation-store.js';

/** How often pending outcomes are offered to the store again, besides at each health check. */
const RETRY_INTERVAL_MS = 5000;

/**
 * Outcomes of turns the store refused to record (a full disk, a read-only file), offered to it again
 * until it takes them, so no turn stays `streaming` once the store works again. While any is
 * pending, the store counts as failing in `/health` and readiness.
 */
export class PendingOutcomes {
  readonly #store: ConversationStore;
  readonly #logger: Logger;
  readonly #retryIntervalMs: number;
  readonly #outcomes = new Map<string, TurnOutcome>();
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
  add(turnId: string, outcome: TurnOutcome): void {
    this.#outcomes.set(turnId, outcome);
    this.#schedule();
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
    for (const [turnId, outcome] of [...this.#outcomes]) {
      try {
        await this.#store.finishTurn(turnId, outcome);
        this.#outcomes.delete(turnId);
        this.#logger.info({ turn_id: turnId, status: outcome.status }, 'stored the outcome of a turn the store had refused');
      } catch {
        // Still refused: the rest would be too, most likely; the next flush tries them all again.
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
