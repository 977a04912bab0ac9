import type { ApiClient } from '../api-client.js';
import { readSse } from '../../client/sse-parser.js';

/** One event of a stream as the smoke test sees it: its id, its raw data and the data parsed. */
export interface SmokeEvent {
  id: string | undefined;
  raw: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** A streaming response: its status and headers, and its events one at a time. */
export interface OpenedStream {
  status: number;
  headers: Headers;
  /** The JSON error body when the answer is not an event stream. */
  error: unknown;
  events: AsyncGenerator<SmokeEvent>;
  /** Closes the connection. */
  close(): void;
}

/** Options of one streaming request. */
export interface StreamRequest {
  /** GET with these query fields, or POST with them as a JSON body. */
  method: 'GET' | 'POST';
  fields: Record<string, string | number>;
  headers?: Record<string, string>;
  signal: AbortSignal;
}

/** Opens `/api/v1/chat/streaming` exactly as a plain SSE client would, without any resuming. */
export async function openStream(client: ApiClient, request: StreamRequest): Promise<OpenedStream> {
  const connection = new AbortController();
  const signal = AbortSignal.any([connection.signal, request.signal]);
  const query = new URLSearchParams(Object.entries(request.fields).map(([key, value]) => [key, String(value)]));
  const response =
    request.method === 'GET'
      ? await client.fetch(`/api/v1/chat/streaming?${query}`, { headers: { accept: 'text/event-stream', ...request.headers }, signal })
      : await client.fetch('/api/v1/chat/streaming', {
          method: 'POST',
          body: request.fields,
          headers: { accept: 'text/event-stream', ...request.headers },
          signal,
        });
  const isStream = response.headers.get('content-type')?.startsWith('text/event-stream') === true;
  let error: unknown;
  if (!isStream) {
    const text = await response.text();
    try {
      error = JSON.parse(text);
    } catch {
      error = text;
    }
  }
  async function* events(): AsyncGenerator<SmokeEvent> {
    if (!isStream || !response.body) return;
    for await (const item of readSse(response.body)) {
      if (item.kind === 'event') yield { id: item.id, raw: item.data, json: JSON.parse(item.data) };
    }
  }
  return { status: response.status, headers: response.headers, error, events: events(), close: () => connection.abort() };
}

/** Reads a stream's events until `until` says stop (then closes the connection) or the stream ends. */
export async function collect(stream: OpenedStream, until?: (event: SmokeEvent, events: SmokeEvent[]) => boolean): Promise<SmokeEvent[]> {
  const events: SmokeEvent[] = [];
  try {
    for await (const event of stream.events) {
      events.push(event);
      if (until?.(event, events)) break;
    }
  } finally {
    stream.close();
  }
  return events;
}

/** The tokens among some events. */
export function tokensOf(events: SmokeEvent[]): SmokeEvent[] {
  return events.filter((event) => event.json.type === 'token');
}

/** Fails a check with a message. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/**
 * Checks a turn's events read over one or more connections: ids `<turn_id>/<position>` one after
 * another, token_index 0, 1, 2 … without gaps or repeats, an `end` last whose final_output is the
 * tokens joined. Returns the end event's data.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function checkTurnEvents(turnId: string, pieces: SmokeEvent[][]): any {
  let expectedPosition: number | undefined;
  let nextIndex = 0;
  let text = '';
  const all = pieces.flat();
  for (const event of all) {
    const match = /^(.+)\/(\d+)$/.exec(event.id ?? '');
    check(match && match[1] === turnId, `event id ${JSON.stringify(event.id)} is not ${turnId}/<position>`);
    const position = Number(match[2]);
    check(
      expectedPosition === undefined || position === expectedPosition,
      `event id ${event.id} follows position ${(expectedPosition ?? 0) - 1}: an event was skipped or repeated`,
    );
    expectedPosition = position + 1;
    if (event.json.type === 'token') {
      check(event.json.token_index === nextIndex, `token_index ${event.json.token_index} where ${nextIndex} was due`);
      check(typeof event.json.token === 'string', 'a token event has no token text');
      nextIndex++;
      text += event.json.token;
    }
  }
  const end = all.at(-1)?.json;
  check(
    end?.type === 'end',
    `the stream ended with ${end?.type ?? 'nothing'} instead of an end event${end?.type === 'error' ? ` (${end.error_code}: ${end.message})` : ''}`,
  );
  check(nextIndex > 0, 'the answer has no tokens');
  check(end.final_output === text, 'the tokens joined differ from final_output');
  check(end.token_count === nextIndex, `token_count is ${end.token_count} but ${nextIndex} tokens came`);
  return end;
}
