import { StoreUnavailableError } from '../errors.js';

/** How long an operation may wait for a free connection while the database answers (it is busy, not down). */
export const BUSY_WAIT_MS = 10_000;

/**
 * The pool's connections as permits, with a queue of our own in front of `pg.Pool` (whose
 * `connectionTimeoutMillis` bounds both a connection attempt and the wait in its queue). A database that
 * answers slowly under load must make requests wait their turn, not fail: they wait up to BUSY_WAIT_MS.
 * A database that is out of reach must fail them fast: once an operation found it so (`markUnavailable`),
 * every waiter is refused at once and later ones wait no longer than their own deadline, until an
 * operation succeeds again (`markAvailable`).
 */
export class ConnectionPermits {
  #free: number;
  readonly #waiters: Array<{ grant: () => void; refuse: (error: Error) => void; timer: NodeJS.Timeout }> = [];
  #unavailable = false;

  constructor(size: number) {
    this.#free = size;
  }

  /** Whether the last operation found the database out of reach. */
  get unavailable(): boolean {
    return this.#unavailable;
  }

  /** Resolves once a connection may be taken; rejects with a 503 after the wait allowed (see the class). */
  acquire(deadline: number): Promise<void> {
    if (this.#free > 0 && this.#waiters.length === 0) {
      this.#free--;
      return Promise.resolve();
    }
    const waitMs = this.#unavailable ? Math.max(0, deadline - performance.now()) : BUSY_WAIT_MS;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          resolve();
        },
        refuse: (error: Error) => {
          clearTimeout(waiter.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          reject(this.#unavailable ? unreachable() : busy(waitMs));
        }, waitMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Gives a permit back: to the longest waiter, if any. */
  release(): void {
    const next = this.#waiters.shift();
    if (next) next.grant();
    else this.#free++;
  }

  /** An operation found the database out of reach: the waiters are refused now rather than after their wait. */
  markUnavailable(): void {
    this.#unavailable = true;
    for (const waiter of this.#waiters.splice(0)) waiter.refuse(unreachable());
  }

  /** An operation succeeded: waiting is patient again. */
  markAvailable(): void {
    this.#unavailable = false;
  }
}

function unreachable(): StoreUnavailableError {
  return new StoreUnavailableError(
    'The conversation database cannot be reached. Please try again in a moment.',
    undefined,
    'DEPENDENCY_UNAVAILABLE',
  );
}

function busy(waitMs: number): StoreUnavailableError {
  return new StoreUnavailableError(
    `The conversation database is too busy: no connection was free within ${waitMs / 1000} s. Please try again in a moment.`,
    undefined,
    'DEPENDENCY_UNAVAILABLE',
  );
}
