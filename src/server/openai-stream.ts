import { ERROR_STATUS } from '../errors.js';
import { formatEventId, type EventPosition } from '../protocol/event-id.js';
import type { ChunkFormat } from '../protocol/openai-chunks.js';
import { openAIErrorBody } from '../protocol/openai-chunks.js';
import type { TokenUsage } from '../protocol/turn.js';
import type { TurnStream } from '../turns/turn-types.js';
import { sseBlock } from './sse-framing.js';
import type { SseStream } from './sse.js';

// A turn's events as OpenAI's chunks. Each chunk that stands for an event of the turn's log carries that
// event's id, `<turn_id>/<position>`, as ChatWait's own stream does; the role chunk is `<turn_id>/start`.
// The usage chunk and `[DONE]` follow the finish chunk without ids of their own: a resume after the
// finish chunk's id gets them (the log hands its last event again to a reader past the end).

/** How one connection relays a turn. */
export interface CompletionRelayOptions {
  format: ChunkFormat;
  includeUsage: boolean;
  /** The event id's position the client resumes after (`Last-Event-ID`); undefined on a first read. */
  resumedAfter: EventPosition | undefined;
}

/** The native events the relay reads, as their JSON holds them. */
type NativeEvent =
  | { type: 'token'; token: string }
  | { type: 'end'; finish_reason: string; usage: TokenUsage | null; token_count: number }
  | { type: 'error'; error_code: string; message: string }
  | { type: 'resync'; final_output: string }
  | { type: 'tool_call' | 'tool_result' };

/**
 * Sends a turn's stream as `chat.completion.chunk` events: the role chunk (first read only), a
 * content chunk per token, the finish chunk, the usage chunk when asked for, then `data: [DONE]`.
 * ChatWait's tool steps run on the server and are not the client's tool calls: they send nothing.
 * A failure is an OpenAI error event (`data: {"error": …}`), after which the stream ends.
 */
export async function relayCompletion(sse: SseStream, stream: TurnStream, options: CompletionRelayOptions): Promise<void> {
  const { format, resumedAfter } = options;
  const { turnId } = stream;
  const holds = typeof resumedAfter === 'number' ? resumedAfter : -1;
  const send = (position: EventPosition, data: string) => sse.send(formatEventId(turnId, position), data);
  if (resumedAfter === undefined) await send('start', format.role());
  for await (const batch of stream.events) {
    for (let index = batch.start; index < batch.entries.length; index++) {
      if (sse.signal.aborted) return;
      const entry = batch.entries[index]!;
      const event = JSON.parse(entry.data) as NativeEvent;
      // The client holds every event up to the one it resumes after; the log gives the last one again to a reader past the end.
      const held = typeof entry.position === 'number' && entry.position <= holds;
      let drained: Promise<void> | undefined;
      if (event.type === 'token') {
        if (!held) drained = send(entry.position, format.content(event.token));
      } else if (event.type === 'end') {
        if (!held) await send(entry.position, format.finish(event.finish_reason));
        await sse.sendFramed(`${options.includeUsage ? `data: ${format.usage(event.usage, event.token_count)}\n\n` : ''}data: [DONE]\n\n`);
        return;
      } else if (event.type === 'error') {
        await send(entry.position, JSON.stringify(errorEventBody(event.error_code, event.message)));
        return;
      } else if (event.type === 'resync') {
        // The turn left the replay log: its whole answer is one delta for a client that holds none of it.
        const next = batch.entries[index + 1];
        const endHeld = typeof next?.position === 'number' && next.position <= holds;
        if (resumedAfter === undefined || resumedAfter === 'start') drained = send('resync', format.content(event.final_output));
        else if (resumedAfter !== 'resync' && !endHeld) {
          await sse.sendFramed(
            sseBlock(
              formatEventId(turnId, 'resync'),
              JSON.stringify(
                openAIErrorBody(
                  'This answer has left the replay log, so it cannot be resumed from where the connection stopped. Read the whole answer from GET /api/v1/conversations/{context_id}.',
                  'invalid_request_error',
                  null,
                  'stream_expired',
                ),
              ),
            ),
          );
          return;
        }
      }
      if (drained) await drained;
    }
  }
}

/** A failure after the stream began, as OpenAI streams one. */
function errorEventBody(errorCode: string, message: string) {
  const status = (ERROR_STATUS as Record<string, number | undefined>)[errorCode] ?? 500;
  return openAIErrorBody(message, status >= 500 ? 'server_error' : 'invalid_request_error', null, errorCode.toLowerCase());
}
