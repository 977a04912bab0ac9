import { ApiError, type CliError } from './api-client.js';
import { oneLine, type OutputStream } from './terminal.js';
import type { TurnHandlers } from './turn-follower.js';

/** How many characters of a tool's arguments or output a step line shows. */
const STEP_LENGTH = 200;

/** Prints a streamed answer: tokens as they arrive, tool steps and reconnects as dim notes. */
export interface AnswerView {
  handlers: Required<Pick<TurnHandlers, 'onToken' | 'onResync' | 'onToolCall' | 'onToolResult' | 'onReconnect'>>;
  /** The answer text printed so far. */
  text(): string;
}

/**
 * An answer view writing the answer to `answer` and notes to `notes` (the same stream in `chat`,
 * stderr in `ask`, so that stdout holds exactly the answer). Server text never reaches a terminal
 * with control characters in it: the answer is filtered on a terminal (and exact elsewhere), the
 * notes are always cleaned one-liners.
 */
export function createAnswerView(answer: OutputStream, notes: OutputStream): AnswerView {
  let printed = '';
  const show = answer.answerFilter();
  const note = (text: string) => {
    // On one terminal, a note written mid-answer would land in the middle of its line.
    if (notes !== answer && notes.isTTY && answer.isTTY) answer.endLine();
    notes.line(notes.style.dim(text));
  };
  return {
    text: () => printed,
    handlers: {
      onToken(token) {
        answer.write(show(token));
        printed += token;
      },
      onResync(finalOutput) {
        // The turn left the server's replay log: it sent the whole stored answer; print what is missing.
        const rest = finalOutput.startsWith(printed) ? finalOutput.slice(printed.length) : `\n${finalOutput}`;
        answer.write(show(rest));
        printed += rest;
      },
      onToolCall(event) {
        note(
          `⚙ ${oneLine(String(event.name), 100)}(${oneLine(typeof event.arguments === 'string' ? event.arguments : JSON.stringify(event.arguments ?? ''), STEP_LENGTH)})`,
        );
      },
      onToolResult(event) {
        note(`  ↳ ${oneLine(typeof event.output === 'string' ? event.output : JSON.stringify(event.output ?? ''), STEP_LENGTH)}`);
      },
      onReconnect({ attempt, delayMs, reason }) {
        note(`connection lost (${oneLine(reason)}); resuming in ${(delayMs / 1000).toFixed(1)} s (attempt ${attempt})`);
      },
    },
  };
}

/**
 * One line describing an error for a person: `ERROR_CODE: message`, with a hint where one helps;
 * what the server said is cleaned of control characters (see oneLine).
 */
export function describeError(error: CliError): string {
  if (!(error instanceof ApiError)) return oneLine(error.message);
  let text = `${oneLine(error.errorCode)}: ${oneLine(error.message)}`;
  if (error.errorCode === 'UNAUTHORIZED') text += ' (pass the key with --api-key or CHATWAIT_API_KEY)';
  if (error.requestId) text += ` [request ${oneLine(error.requestId)}]`;
  return text;
}
