/** One dispatched SSE event, with its data parsed as JSON. */
export interface SseEvent {
  id: string | undefined;
  data: string;
  /** The field names of the event's block, in order (a well-formed ChatWait event has exactly id, data). */
  fields: string[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** Everything an SSE parser sees, in order: events, comments and retry fields. */
export type SseItem = { kind: 'event'; event: SseEvent } | { kind: 'comment'; text: string } | { kind: 'retry'; ms: number };

/** Parses an SSE body as a browser does (WHATWG rules): fields per line, an event per blank line. */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseItem> {
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let data: string[] = [];
  let fields: string[] = [];
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(buffer[newline] === '\r' && buffer[newline + 1] === '\n' ? newline + 2 : newline + 1);
      if (line === '') {
        if (data.length > 0) {
          const text = data.join('\n');
          yield { kind: 'event', event: { id, data: text, json: JSON.parse(text), fields } };
        }
        data = [];
        fields = [];
        continue;
      }
      if (line.startsWith(':')) {
        yield { kind: 'comment', text: line.slice(1).trim() };
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field !== 'retry') fields.push(field);
      if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) yield { kind: 'retry', ms: Number(value) };
    }
  }
}

/** The outcome of reading one SSE response. */
export interface SseResult {
  status: number;
  headers: Headers;
  events: SseEvent[];
  comments: string[];
  retry: number | undefined;
  /** The JSON body of a non-SSE (error) response. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  error: any;
}

/** Options of `readSse`. */
export interface ReadSseOptions extends RequestInit {
  /** Stop reading (and close the connection) once this returns true. */
  until?: (event: SseEvent, events: SseEvent[]) => boolean;
}

/** Requests an SSE URL and reads it to the end (or until `until`), as a real client does. */
export async function readSse(url: string, options: ReadSseOptions = {}): Promise<SseResult> {
  const { until, ...init } = options;
  const controller = new AbortController();
  const response = await fetch(url, { ...init, signal: init.signal ?? controller.signal });
  const result: SseResult = {
    status: response.status,
    headers: response.headers,
    events: [],
    comments: [],
    retry: undefined,
    error: undefined,
  };
  if (!response.headers.get('content-type')?.startsWith('text/event-stream')) {
    const text = await response.text();
    result.error = text ? JSON.parse(text) : undefined;
    return result;
  }
  try {
    for await (const item of parseSse(response.body!)) {
      if (item.kind === 'comment') result.comments.push(item.text);
      else if (item.kind === 'retry') result.retry = item.ms;
      else {
        result.events.push(item.event);
        if (until?.(item.event, result.events)) break;
      }
    }
  } finally {
    controller.abort();
  }
  return result;
}

/** The tokens of a list of events, in order. */
export function tokensOf(events: SseEvent[]): string[] {
  return events.filter((event) => event.json.type === 'token').map((event) => event.json.token as string);
}
