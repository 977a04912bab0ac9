import type { LogBatch, ReplayLog } from './replay-log.js';

interface TurnLog {
  entries: string[];
  ended: boolean;
  /** Readers waiting for the next append, woken all at once. */
  waiters: Set<() => void>;
  expiry: NodeJS.Timeout | undefined;
}

/** The most entries one read hands out at once. */
const MAX_BATCH = 256;

/** The replay log held in this process's memory: the default when `REDIS_URL` is not set. */
export class MemoryReplayLog implements ReplayLog {
  readonly #logs = new Map<string, TurnLog>();

  open(turnId: string): void {
    if (!this.#logs.has(turnId)) this.#logs.set(turnId, { entries: [], ended: false, waiters: new Set(), expiry: undefined });
  }

  append(turnId: string, data: string, final = false): number {
    const log = this.#logs.get(turnId);
    if (!log) throw new Error(`replay log of turn ${turnId} is not open`);
    if (log.ended) throw new Error(`replay log of turn ${turnId} has already ended`);
    log.entries.push(data);
    log.ended = final;
    if (log.waiters.size > 0) {
      const waiters = log.waiters;
      log.waiters = new Set();
      for (const wake of waiters) wake();
    }
    return log.entries.length - 1;
  }

  async *read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<LogBatch> {
    let position = from;
    for (;;) {
      const log = this.#logs.get(turnId);
      if (!log || signal?.aborted) return;
      if (position < log.entries.length) {
        // What there is, in batches: a reader that fell behind catches up in few writes, with bounded memory.
        const data = log.entries.slice(position, position + MAX_BATCH);
        yield { first: position, data };
        position += data.length;
        if (signal?.aborted) return;
        continue;
      }
      if (log.ended) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        // A reader that leaves while waiting takes itself off the list at once.
        const onAbort = () => {
          log.waiters.delete(wake);
          resolve();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        log.waiters.add(wake);
      });
    }
  }

  ended(turnId: string): readonly string[] | undefined {
    const log = this.#logs.get(turnId);
    return log?.ended ? log.entries : undefined;
  }

  /** How many turns' logs are held now. */
  get size(): number {
    return this.#logs.size;
  }

  has(turnId: string): boolean {
    return this.#logs.has(turnId);
  }

  expire(turnId: string, ttlMs: number): void {
    const log = this.#logs.get(turnId);
    if (!log) return;
    clearTimeout(log.expiry);
    log.expiry = setTimeout(() => {
      this.#logs.delete(turnId);
      for (const wake of log.waiters) wake();
    }, ttlMs);
    log.expiry.unref();
  }

  close(): void {
    for (const [turnId, log] of this.#logs) {
      clearTimeout(log.expiry);
      this.#logs.delete(turnId);
      for (const wake of log.waiters) wake();
    }
  }
}
