import type { TurnRecord } from '../store/conversation-store.js';

/** The first wait between two reads of a turn's stored record; it doubles up to `maxPollMs`. */
const FIRST_POLL_MS = 250;
/** The longest wait between two reads of a turn's stored record. */
const MAX_POLL_MS = 2000;

/** How the stored ends of turns generating on other instances are waited for. */
export interface StoredEndsOptions {
  getTurn: (turnId: string) => Promise<TurnRecord | undefined>;
  /** Whether a stored record still has its end to wait for (a turn generating on another instance). */
  pending: (turnId: string, record: TurnRecord | undefined) => boolean;
  /** How long a turn's end is waited for at most, from the first reader on. */
  waitMs: number;
  firstPollMs?: number;
  maxPollMs?: number;
}

/** One turn's poll of the store, shared by every reader waiting for its end. */
interface Poll {
  readers: number;
  latest: TurnRecord | undefined;
  done: Promise<TurnRecord | undefined>;
}

/**
 * Waits for the stored end of turns whose log readers lost (scale-out.md §6): a Redis restarted empty
 * takes the log of every remote reader at once, so each turn is polled once, for all of its readers,
 * with a backoff, rather than once per reader at a steady rate.
 */
export class StoredEnds {
  readonly #options: StoredEndsOptions;
  readonly #polls = new Map<string, Poll>();

  constructor(options: StoredEndsOptions) {
    this.#options = options;
  }

  /** How many turns are being polled now. */
  get size(): number {
    return this.#polls.size;
  }

  /** The turn's record once it ended (or the wait ran out); the latest record read if `signal` aborts first. */
  async wait(turnId: string, signal?: AbortSignal): Promise<TurnRecord | undefined> {
    let poll = this.#polls.get(turnId);
    if (!poll) {
      const started: Poll = { readers: 0, latest: undefined, done: Promise.resolve(undefined) };
      started.done = this.#run(turnId, started);
      poll = started;
      this.#polls.set(turnId, poll);
    }
    poll.readers++;
    try {
      if (!signal) return await poll.done;
      const current = poll;
      return await new Promise<TurnRecord | undefined>((resolve, reject) => {
        const aborted = () => resolve(current.latest);
        if (signal.aborted) return aborted();
        signal.addEventListener('abort', aborted, { once: true });
        current.done.then(resolve, reject).finally(() => signal.removeEventListener('abort', aborted));
      });
    } finally {
      poll.readers--;
    }
  }

  async #run(turnId: string, poll: Poll): Promise<TurnRecord | undefined> {
    const { getTurn, pending, waitMs } = this.#options;
    const deadline = Date.now() + waitMs;
    let delay = this.#options.firstPollMs ?? FIRST_POLL_MS;
    try {
      // Yields once first, so the reader that starts the poll is counted before the first answer.
      await Promise.resolve();
      for (;;) {
        const record = await getTurn(turnId);
        poll.latest = record;
        // Nobody waits any more (every reader left): the poll stops with them.
        if (!pending(turnId, record) || poll.readers === 0 || Date.now() >= deadline) return record;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(delay * 2, this.#options.maxPollMs ?? MAX_POLL_MS);
      }
    } finally {
      if (this.#polls.get(turnId) === poll) this.#polls.delete(turnId);
    }
  }
}
