import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** How long a browser's EventSource waits before reconnecting, sent as the stream's `retry:` field. */
export const SSE_RETRY_MS = 2000;

/** Options of one SSE stream. */
export interface SseStreamOptions {
  heartbeatMs: number;
  /** Headers already decided for the response (request id, CORS, security headers). */
  headers: OutgoingHttpHeaders | Record<string, string | number | string[] | undefined>;
}

/**
 * One Server-Sent Events response: headers and a first comment flushed at once, `id:` + `data:`
 * blocks, a `: ping` comment when idle, and the socket's backpressure respected.
 */
export class SseStream {
  readonly #response: ServerResponse;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #closed: AbortController = new AbortController();

  constructor(response: ServerResponse, options: SseStreamOptions) {
    this.#response = response;
    response.writeHead(200, {
      ...options.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    response.socket?.setNoDelay(true);
    response.write(`retry: ${SSE_RETRY_MS}\n: connected\n\n`);
    this.#heartbeat = setInterval(() => {
      if (!response.writableNeedDrain) response.write(': ping\n\n');
    }, options.heartbeatMs);
    this.#heartbeat.unref();
    const onClose = () => this.#close();
    response.once('close', onClose);
    response.once('error', onClose);
    // The client may have gone while the turn was being set up: then 'close' has already fired.
    if (response.destroyed || !response.writable) this.#close();
  }

  /** Aborts when the client goes away (or the stream is ended). */
  get signal(): AbortSignal {
    return this.#closed.signal;
  }

  /** Sends one event; resolves at once unless the socket's buffer is full, then when it drains. */
  send(id: string, data: string): Promise<void> | undefined {
    if (this.#closed.signal.aborted) return undefined;
    if (this.#response.write(`id: ${id}\ndata: ${data}\n\n`)) return undefined;
    return this.#drained();
  }

  /** Ends the response. */
  end(): void {
    if (!this.#closed.signal.aborted) this.#response.end();
    this.#close();
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#response.off('drain', done);
        this.#closed.signal.removeEventListener('abort', done);
        resolve();
      };
      this.#response.once('drain', done);
      this.#closed.signal.addEventListener('abort', done, { once: true });
    });
  }

  #close(): void {
    clearInterval(this.#heartbeat);
    if (!this.#closed.signal.aborted) this.#closed.abort();
  }
}
