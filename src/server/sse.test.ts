import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import { SseStream } from './sse.js';

/** A response whose socket never drains, as with a client that stopped reading. */
function stuckResponse() {
  const response = Object.assign(new EventEmitter(), {
    destroyed: false,
    writable: true,
    writableLength: 0,
    writableNeedDrain: false,
    socket: null,
    written: [] as string[],
    writeHead: vi.fn(),
    write(chunk: string) {
      response.written.push(chunk);
      response.writableLength += chunk.length;
      response.writableNeedDrain = response.writableLength > 16_384;
      return !response.writableNeedDrain;
    },
    end: vi.fn(),
    destroy: vi.fn(() => {
      response.destroyed = true;
      response.emit('close');
    }),
  });
  return response;
}

describe('SseStream', () => {
  it('stops writing to a full socket and disconnects a reader that takes nothing for the stall timeout', async () => {
    vi.useFakeTimers();
    try {
      const response = stuckResponse();
      const stream = new SseStream(response as unknown as ServerResponse, {
        heartbeatMs: 1000,
        maxBufferedBytes: 1_000_000,
        drainTimeoutMs: 5000,
        headers: {},
      });
      const big = 'x'.repeat(20_000);
      const waiting = stream.send('t/0', JSON.stringify({ token: big }));
      expect(waiting).toBeInstanceOf(Promise);
      const writes = response.written.length;
      vi.advanceTimersByTime(4999);
      expect(response.destroy).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      await waiting;
      expect(response.destroy).toHaveBeenCalled();
      expect(stream.closedBy).toBe('slow_reader');
      expect(stream.signal.aborted).toBe(true);
      expect(stream.send('t/1', '{}')).toBeUndefined();
      expect(response.written.length).toBe(writes);
    } finally {
      vi.useRealTimers();
    }
  });

  it('disconnects a reader whose unsent data passes the limit', () => {
    const response = stuckResponse();
    const stream = new SseStream(response as unknown as ServerResponse, {
      heartbeatMs: 1000,
      maxBufferedBytes: 30_000,
      drainTimeoutMs: 60_000,
      headers: {},
    });
    void stream.send('t/0', 'x'.repeat(40_000));
    expect(response.destroy).not.toHaveBeenCalled();
    stream.send('t/1', '{}');
    expect(response.destroy).toHaveBeenCalled();
    expect(stream.closedBy).toBe('slow_reader');
  });

  it('sends framed text in pieces cut at block ends, one piece per drain', async () => {
    const response = stuckResponse();
    const stream = new SseStream(response as unknown as ServerResponse, {
      heartbeatMs: 1000,
      maxBufferedBytes: 1_000_000,
      drainTimeoutMs: 60_000,
      headers: {},
    });
    const blocks = Array.from({ length: 2000 }, (_, position) => `data: {"token":"${'y'.repeat(position % 90)}"}\nid: t/${position}\n\n`);
    const text = blocks.join('');
    const before = response.written.length;
    const waiting = stream.sendFramed(text);
    const pieces = () => response.written.slice(before);
    expect(pieces()).toHaveLength(1);
    let settled = false;
    void waiting?.then(() => (settled = true));
    while (!settled) {
      response.writableLength = 0;
      response.writableNeedDrain = false;
      response.emit('drain');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(pieces().join('')).toBe(text);
    expect(pieces().length).toBeGreaterThan(1);
    for (const piece of pieces()) expect(piece.endsWith('\n\n') && piece.startsWith('data: ')).toBe(true);
  });

  it('notices a client that left before the stream was set up', () => {
    const response = stuckResponse();
    response.destroyed = true;
    const stream = new SseStream(response as unknown as ServerResponse, {
      heartbeatMs: 1000,
      maxBufferedBytes: 30_000,
      drainTimeoutMs: 60_000,
      headers: {},
    });
    expect(stream.signal.aborted).toBe(true);
    expect(stream.send('t/0', '{}')).toBeUndefined();
  });
});
