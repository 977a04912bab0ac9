import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { ReplayBatch, TurnEntry } from '../turns/turn-types.js';
import { entryBlock, framedLog, sseBlock } from './sse-framing.js';

/** How long a browser's EventSource waits before reconnecting, sent as the stream's `retry:` field. */
export const SSE_RETRY_MS = 2000;

/** Options of one SSE stream. */
export interface SseStreamOptions {
  heartbeatMs: number;
  /** Unsent bytes a reader may leave queued before its connection is closed (the turn goes on, resumable). */
  maxBufferedBytes: number;
  /** How long to wait for a full socket buffer to drain before closing the connection. */
  drainTimeoutMs: number;
  /** Headers already decided for the response (request id, CORS, security headers). */
  headers: OutgoingHttpHeaders | Record<string, string | number | string[] | undefined>;
}

/** About how much text one socket write carries when a reader catches up on many events. */
const WRITE_CHUNK_BYTES = 64 * 1024;

/**
 * The abort reason of a connection that ended. One shared value: `abort()` without a reason builds a
 * DOMException with a stack trace, on every stream (2 % of a resume's CPU); readers only check `aborted`.
 */
export const CONNECTION_ENDED: unknown = Object.freeze({ name: 'ConnectionEnded', message: 'the connection ended' });

/** Why a stream's connection ended. */
export type ClosedBy = 'server' | 'client' | 'slow_reader';

/**
 * One Server-Sent Events response: headers and a first comment flushed at once, `data:` + `id:`
 * blocks, a `: ping` comment when idle, and the socket's backpressure respected: nothing more is
 * written while the socket's buffer is full, and a reader that takes nothing for `drainTimeoutMs`
 * is disconnected (its turn goes on, resumable).
 */
export class SseStream {
  readonly #response: ServerResponse;
  readonly #options: SseStreamOptions;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #closed: AbortController = new AbortController();
  #closedBy: ClosedBy | undefined;

  constructor(response: ServerResponse, options: SseStreamOptions) {
    this.#response = response;
    this.#options = options;
    response.writeHead(200, {
      ...options.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.socket?.setNoDelay(true);
    // No blank line after `retry:` and comments: a block without data reaches some clients
    // (@microsoft/fetch-event-source) as an empty message. They join the next event's block.
    response.write(`retry: ${SSE_RETRY_MS}\n: connected\n`);
    this.#heartbeat = setInterval(() => {
      if (!response.writableNeedDrain) response.write(': ping\n');
    }, options.heartbeatMs);
    this.#heartbeat.unref();
    const onClose = () => this.#close('client');
    response.once('close', onClose);
    response.once('error', onClose);
    // The client may have gone while the turn was being set up: then 'close' has already fired.
    if (response.destroyed || !response.writable) this.#close('client');
  }

  /** Aborts when the connection ends, whoever ends it. */
  get signal(): AbortSignal {
    return this.#closed.signal;
  }

  /** Who ended the connection, once it has ended. */
  get closedBy(): ClosedBy | undefined {
    return this.#closedBy;
  }

  /** Sends one event; resolves at once unless the socket's buffer is full, then when it drains. */
  send(id: string, data: string): Promise<void> | undefined {
    return this.#write(sseBlock(id, data));
  }

  /** Sends a reader's batch: an ended turn's whole log as a slice of its text framed once, other entries framed now. */
  sendReplay(turnId: string, batch: ReplayBatch): Promise<void> | undefined {
    if (!batch.shared) return this.sendEntries(turnId, batch.entries, batch.start);
    const framed = framedLog(turnId, batch.entries);
    return this.sendFramed(framed.text, framed.offsets[batch.start]);
  }

  /**
   * Sends a turn's entries from index `start` with as few writes as possible (still one SSE block
   * each), in pieces of about WRITE_CHUNK_BYTES, waiting for the socket to drain between pieces: a
   * reader far behind never makes the server build its whole backlog in memory.
   */
  sendEntries(turnId: string, entries: readonly TurnEntry[], start = 0): Promise<void> | undefined {
    let text = '';
    for (let index = start; index < entries.length; index++) {
      text += entryBlock(turnId, entries[index]!);
      if (text.length >= WRITE_CHUNK_BYTES && index < entries.length - 1) {
        const drained = this.#write(text);
        if (this.#closed.signal.aborted) return undefined;
        if (drained) return drained.then(() => this.sendEntries(turnId, entries, index + 1));
        text = '';
      }
    }
    return text === '' ? undefined : this.#write(text);
  }

  /**
   * Sends text already framed as SSE blocks, in pieces of about WRITE_CHUNK_BYTES (cut only at a
   * block's end), waiting for the socket to drain between pieces.
   */
  sendFramed(text: string, start = 0): Promise<void> | undefined {
    while (start < text.length) {
      const cut = text.length - start <= WRITE_CHUNK_BYTES ? text.length : text.indexOf('\n\n', start + WRITE_CHUNK_BYTES) + 2;
      const end = cut < 2 ? text.length : cut;
      const drained = this.#write(text.slice(start, end));
      if (this.#closed.signal.aborted) return undefined;
      start = end;
      if (drained) return start < text.length ? drained.then(() => this.sendFramed(text, start)) : drained;
    }
    return undefined;
  }

  #write(text: string): Promise<void> | undefined {
    if (this.#closed.signal.aborted) return undefined;
    // Callers wait for 'drain' whenever a write fills the buffer, so it only grows past the limit when
    // something else keeps writing to a reader that does not read. One large event (a long `end`) is fine.
    if (this.#response.writableLength > this.#options.maxBufferedBytes) {
      this.#disconnectSlowReader();
      return undefined;
    }
    if (this.#response.write(text)) return undefined;
    return this.#drained();
  }

  /** Ends the response. */
  end(): void {
    if (!this.#closed.signal.aborted) this.#response.end();
    this.#close('server');
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#response.off('drain', done);
        this.#closed.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#disconnectSlowReader();
        done();
      }, this.#options.drainTimeoutMs);
      this.#response.once('drain', done);
      this.#closed.signal.addEventListener('abort', done, { once: true });
    });
  }

  #disconnectSlowReader(): void {
    this.#close('slow_reader');
    this.#response.destroy();
  }

  #close(by: ClosedBy): void {
    clearInterval(this.#heartbeat);
    if (this.#closed.signal.aborted) return;
    this.#closedBy = by;
    this.#closed.abort(CONNECTION_ENDED);
  }
}
