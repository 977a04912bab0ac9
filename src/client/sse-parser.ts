// The one text/event-stream parser of the page and the terminal client, by the WHATWG rules
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
// Plain TypeScript: no Node-only or DOM-only API, so tsc (the CLI) and Vite (the page) both build it.

/** One dispatched event. */
export interface SseEvent {
  kind: 'event';
  /** The `event` field, `message` when the block had none. */
  type: string;
  /** The data lines of the block, joined by LF. */
  data: string;
  /** The `id` field of this block, or undefined when it had none (or one containing NUL, which is ignored). */
  id: string | undefined;
  /** The stream's last event id at dispatch, as EventSource reports it: it persists across blocks. */
  lastEventId: string;
}

/** Everything a stream says, in order: events, comments (`: ping`), and reconnection times. */
export type SseItem = SseEvent | { kind: 'comment'; text: string } | { kind: 'retry'; milliseconds: number };

/** A push parser: feed it text as it arrives, in chunks cut anywhere; it returns what became complete. */
export interface SseParser {
  feed(text: string): SseItem[];
}

/** A parser for one stream: its state (a partial line, the block being read, the last event id) lives in it. */
export function createSseParser(): SseParser {
  let buffer = '';
  let atStart = true;
  // A CR ended the previous chunk: an LF opening the next one belongs to it (CRLF split in two).
  let skipLineFeed = false;
  let data: string[] = [];
  let type = '';
  let id: string | undefined;
  let lastEventId = '';

  const processLine = (line: string, items: SseItem[]) => {
    if (line === '') {
      // No data field, no event: only the last event id survives the block.
      if (data.length > 0) items.push({ kind: 'event', type: type === '' ? 'message' : type, data: data.join('\n'), id, lastEventId });
      data = [];
      type = '';
      id = undefined;
      return;
    }
    if (line.startsWith(':')) {
      items.push({ kind: 'comment', text: line.slice(1).replace(/^ /, '') });
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') type = value;
    else if (field === 'id') {
      if (!value.includes('\0')) {
        id = value;
        lastEventId = value;
      }
    } else if (field === 'retry') {
      if (/^\d+$/.test(value)) items.push({ kind: 'retry', milliseconds: Number(value) });
    }
    // Any other field is ignored.
  };

  return {
    feed(text) {
      const items: SseItem[] = [];
      let chunk = text;
      if (skipLineFeed && chunk !== '') {
        if (chunk.startsWith('\n')) chunk = chunk.slice(1);
        skipLineFeed = false;
      }
      buffer += chunk;
      if (atStart && buffer !== '') {
        // One byte order mark at the very start of the stream is not part of the first line.
        if (buffer.startsWith('\uFEFF')) buffer = buffer.slice(1);
        atStart = buffer === '';
      }
      let lineStart = 0;
      for (let index = 0; index < buffer.length; index++) {
        const char = buffer.charCodeAt(index);
        if (char !== 10 && char !== 13) continue;
        processLine(buffer.slice(lineStart, index), items);
        if (char === 13) {
          if (index + 1 === buffer.length) skipLineFeed = true;
          else if (buffer.charCodeAt(index + 1) === 10) index++;
        }
        lineStart = index + 1;
      }
      buffer = buffer.slice(lineStart);
      return items;
    },
  };
}

/**
 * Reads a response body as an event stream, decoding UTF-8 across chunk boundaries. Stopping early
 * (a `break`, or the generator's return) cancels the body, which closes the connection. A stream
 * that ends inside a block drops that block, as the rules say.
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseItem> {
  const reader = body.getReader();
  // The decoder keeps a leading BOM (ignoreBOM) so that exactly one is dropped, by the parser, whatever the input.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  const parser = createSseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const item of parser.feed(decoder.decode(value, { stream: true }))) yield item;
    }
    for (const item of parser.feed(decoder.decode())) yield item;
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
