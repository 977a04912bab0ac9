/** One SSE event: its id (if any) and its data lines joined. */
export interface SseMessage {
  kind: 'event';
  id: string | undefined;
  data: string;
}

/** What the reader yields: events, and a mark for anything else received (comments, retry fields), which proves the connection alive. */
export type SseItem = SseMessage | { kind: 'comment'; text: string };

/**
 * Parses a text/event-stream body by the WHATWG rules: fields per line (LF, CR or CRLF), an event per
 * blank line, `:` comments, one optional space after the colon, several data lines joined by LF.
 */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseItem> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let data: string[] = [];
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/[\r\n]/)) >= 0) {
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (buffer[newline] === '\r' && newline === buffer.length - 1) break;
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(buffer[newline] === '\r' && buffer[newline + 1] === '\n' ? newline + 2 : newline + 1);
      if (line === '') {
        if (data.length > 0) yield { kind: 'event', id, data: data.join('\n') };
        data = [];
        continue;
      }
      if (line.startsWith(':')) {
        yield { kind: 'comment', text: line.slice(1).trim() };
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
      else yield { kind: 'comment', text: '' };
    }
  }
}
