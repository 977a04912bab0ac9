import { RequestError } from '../errors.js';
import type { ChatMessage } from '../model/chat-model.js';
import type { ChatCompletionRequest, OpenAIMessage } from '../protocol/openai-chat.js';
import { MAX_MESSAGE_CHARS } from './schemas.js';

// What a chat-completions request asks of a turn: its message, history and instructions, or a clear 400
// naming the field (as `param`) that ChatWait cannot honour.

/** The turn a chat-completions request starts. */
export interface CompletionTurn {
  message: string;
  history: ChatMessage[];
  /** The request's system and developer messages, joined; undefined leaves the configured instructions. */
  instructions: string | undefined;
}

/** The longest history message and instructions taken, as `/api/v1/chat/*` takes history. */
const MAX_CONTENT_CHARS = 100_000;

/** A character UTF-8 (and so the store) cannot hold: a lone UTF-16 surrogate. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Checks what the request asks for that ChatWait does not do (`n` > 1, its own `tools`, a JSON
 * `response_format`) and that `model` is one `/v1/models` lists, then splits `messages`: the last is
 * the turn's user message, earlier user and assistant messages its history, system and developer
 * messages (wherever they are) its instructions.
 */
export function toCompletionTurn(body: ChatCompletionRequest, models: readonly string[]): CompletionTurn {
  if (!models.includes(body.model)) {
    throw invalid('NOT_FOUND', `The model \`${body.model}\` does not exist. GET /v1/models lists the models ChatWait serves.`, ['model']);
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1)
    throw invalid('BAD_REQUEST', 'n must be 1: ChatWait gives one answer per request.', ['n']);
  if ((body.tools?.length ?? 0) > 0 || (body.functions?.length ?? 0) > 0) {
    throw invalid(
      'BAD_REQUEST',
      'tools are not supported: ChatWait runs its own tools on the server and does not call the client\'s. Send the request without "tools".',
      [body.tools ? 'tools' : 'functions'],
    );
  }
  if (body.response_format && body.response_format.type !== 'text') {
    throw invalid('BAD_REQUEST', 'response_format must be {"type":"text"}: ChatWait does not constrain the answer to JSON.', [
      'response_format',
    ]);
  }
  const instructions: string[] = [];
  const history: ChatMessage[] = [];
  body.messages.forEach((message, index) => {
    const text = textOf(message, index);
    if (message.role === 'system' || message.role === 'developer') instructions.push(text);
    else if (message.role === 'user' || message.role === 'assistant') {
      if (message.role === 'assistant' && (message.tool_calls?.length ?? 0) > 0) {
        throw invalid('BAD_REQUEST', 'tool calls are not supported: send assistant messages with their text only.', [
          'messages',
          index,
          'tool_calls',
        ]);
      }
      history.push({ role: message.role, content: text });
    } else {
      throw invalid('BAD_REQUEST', `messages of role "${message.role}" are not supported: ChatWait takes no client tools.`, [
        'messages',
        index,
        'role',
      ]);
    }
  });
  const last = history.pop();
  if (!last || last.role !== 'user' || body.messages.at(-1)?.role !== 'user') {
    throw invalid('BAD_REQUEST', 'The last message must be the user message to answer.', ['messages', body.messages.length - 1, 'role']);
  }
  const lastIndex = body.messages.length - 1;
  if (last.content.trim() === '')
    throw invalid('EMPTY_MESSAGE', 'The last user message is empty. Type something to send.', contentAt(lastIndex));
  if (last.content.length > MAX_MESSAGE_CHARS) {
    throw invalid(
      'BAD_REQUEST',
      `The last user message must be at most ${MAX_MESSAGE_CHARS.toLocaleString('en')} characters.`,
      contentAt(lastIndex),
    );
  }
  const joined = instructions.join('\n\n');
  if (joined.length > MAX_CONTENT_CHARS) {
    throw invalid('BAD_REQUEST', `The system messages must hold at most ${MAX_CONTENT_CHARS.toLocaleString('en')} characters.`, [
      'messages',
    ]);
  }
  return { message: last.content, history, instructions: instructions.length > 0 ? joined : undefined };
}

/** A message's text: a string, or the text parts of a list joined by line breaks; any other part is refused. */
function textOf(message: OpenAIMessage, index: number): string {
  const { content } = message;
  let text: string;
  if (content === undefined || content === null) text = '';
  else if (typeof content === 'string') text = content;
  else {
    text = content
      .map((part, partIndex) => {
        if (part.type !== 'text' || part.text === undefined) {
          throw invalid(
            'BAD_REQUEST',
            `Content parts of type "${part.type}" are not supported: ChatWait reads text only. Send the message's text as a string or as parts of type "text".`,
            ['messages', index, 'content', partIndex, 'type'],
          );
        }
        return part.text;
      })
      .join('\n');
  }
  if (text.length > MAX_CONTENT_CHARS) {
    throw invalid('BAD_REQUEST', `A message must hold at most ${MAX_CONTENT_CHARS.toLocaleString('en')} characters.`, contentAt(index));
  }
  if (LONE_SURROGATE.test(text)) {
    throw invalid(
      'BAD_REQUEST',
      'A message must not contain a lone UTF-16 surrogate (such as \\ud800 without its pair).',
      contentAt(index),
    );
  }
  return text;
}

function contentAt(index: number): (string | number)[] {
  return ['messages', index, 'content'];
}

/** A refusal naming the body field at fault (OpenAI's `param`). */
function invalid(code: 'BAD_REQUEST' | 'NOT_FOUND' | 'EMPTY_MESSAGE', message: string, path: (string | number)[]): RequestError {
  return new RequestError(code, message, { detail: [{ loc: ['body', ...path], msg: message, type: 'value_error' }] });
}
