import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSseParser, readSse, type SseItem } from './sse-parser.js';

/** Everything a parser makes of `chunks`, fed one after another. */
function parse(...chunks: string[]): SseItem[] {
  const parser = createSseParser();
  return chunks.flatMap((chunk) => parser.feed(chunk));
}

/** The dispatched events only, as [data, id] pairs. */
function events(...chunks: string[]): [string, string | undefined][] {
  return parse(...chunks).flatMap((item) => (item.kind === 'event' ? [[item.data, item.id] as [string, string | undefined]] : []));
}

describe('the SSE parser (WHATWG rules)', () => {
  it('ends lines with LF, CRLF or a lone CR alike', () => {
    const expected = [
      ['one', 'a/1'],
      ['two', 'a/2'],
    ];
    expect(events('data: one\nid: a/1\n\ndata: two\nid: a/2\n\n')).toEqual(expected);
    expect(events('data: one\r\nid: a/1\r\n\r\ndata: two\r\nid: a/2\r\n\r\n')).toEqual(expected);
    expect(events('data: one\rid: a/1\r\rdata: two\rid: a/2\r\r')).toEqual(expected);
    expect(events('data: one\rid: a/1\r\n\ndata: two\nid: a/2\r\r')).toEqual(expected);
  });

  it('joins several data lines with LF, keeping empty ones', () => {
    expect(events('data: first\ndata:\ndata: third\n\n')).toEqual([['first\n\nthird', undefined]]);
    expect(events('data\n\n')).toEqual([['', undefined]]);
  });

  it('strips one leading space of a value, no more, and takes a line without a colon as a field with an empty value', () => {
    expect(events('data:  two spaces\n\n')).toEqual([[' two spaces', undefined]]);
    expect(events('data:none\n\n')).toEqual([['none', undefined]]);
    expect(events('data: a: b\n\n')).toEqual([['a: b', undefined]]);
  });

  it('reports comments and ignores unknown fields', () => {
    expect(parse(': ping\nfoo: bar\ndata: x\n\n')).toEqual([
      { kind: 'comment', text: 'ping' },
      { kind: 'event', type: 'message', data: 'x', id: undefined, lastEventId: '' },
    ]);
  });

  it('ignores an id containing NUL, and keeps the last event id across blocks', () => {
    const items = parse('data: one\nid: t/1\n\ndata: two\nid: t/\u00002\n\ndata: three\n\n');
    expect(items).toEqual([
      { kind: 'event', type: 'message', data: 'one', id: 't/1', lastEventId: 't/1' },
      { kind: 'event', type: 'message', data: 'two', id: undefined, lastEventId: 't/1' },
      { kind: 'event', type: 'message', data: 'three', id: undefined, lastEventId: 't/1' },
    ]);
  });

  it('takes retry only when it is all digits', () => {
    expect(parse('retry: 1500\nretry: 1.5\nretry: soon\n')).toEqual([{ kind: 'retry', milliseconds: 1500 }]);
  });

  it('does not dispatch a block without data, though its id counts', () => {
    expect(parse('id: t/4\n\nevent: ping\n\ndata: after\n\n')).toEqual([
      { kind: 'event', type: 'message', data: 'after', id: undefined, lastEventId: 't/4' },
    ]);
  });

  it('reads the event field, and resets it after each block', () => {
    const items = parse('event: custom\ndata: a\n\ndata: b\n\n');
    expect(items.map((item) => item.kind === 'event' && item.type)).toEqual(['custom', 'message']);
  });

  it('drops one byte order mark at the start of the stream, and only there', () => {
    expect(events('\uFEFFdata: x\n\n')).toEqual([['x', undefined]]);
    expect(events('\uFEFF', 'data: x\n\n')).toEqual([['x', undefined]]);
    // A second BOM is part of the first line, which then names no known field.
    expect(events('\uFEFF\uFEFFdata: x\n\n')).toEqual([]);
    expect(events('data: x\n\n\uFEFFdata: y\n\n')).toEqual([['x', undefined]]);
  });

  it('does not dispatch a block the stream ends inside', () => {
    expect(events('data: whole\n\ndata: half')).toEqual([['whole', undefined]]);
    expect(events('data: whole\n\ndata: half\n')).toEqual([['whole', undefined]]);
  });

  it('gives the same items however the stream is cut into chunks (CR and LF of a CRLF apart included)', () => {
    const stream =
      '\uFEFFretry: 10\n: hello\r\ndata: {"a":1}\r\nid: t/0\r\n\r\ndata: line one\rdata: line two\rid: t/1\r\rdata:x\ndata\nid: bad\u0000id\n\n: bye\r\n';
    const whole = parse(stream);
    expect(whole.filter((item) => item.kind === 'event')).toHaveLength(3);
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 12 }), (cuts) => {
        const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length];
        const chunks = points.slice(1).map((end, index) => stream.slice(points[index], end));
        expect(parse(...chunks)).toEqual(whole);
      }),
      { numRuns: 500 },
    );
  });

  it('reads bytes, decoding characters split between chunks, and stops the body when left early', async () => {
    const bytes = new TextEncoder().encode('data: h\u00e9llo \u{1F600}\nid: t/0\n\ndata: next\n\n');
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // One byte per chunk: every multi-byte character arrives in pieces.
        for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
      },
      cancel() {
        cancelled = true;
      },
    });
    for await (const item of readSse(body)) {
      expect(item).toMatchObject({ kind: 'event', data: 'h\u00e9llo \u{1F600}', id: 't/0' });
      break;
    }
    expect(cancelled).toBe(true);
  });
});
