import { randomUUID } from 'node:crypto';
import { ApiClient, CliError, EXIT_CODES, UsageError } from '../api-client.js';
import { createAnswerView, describeError } from '../answer-view.js';
import { GLOBAL_OPTIONS_HELP, parseCommandArguments, resolveConnection } from '../cli-options.js';
import type { CommandContext } from '../command.js';
import { oneLine } from '../terminal.js';
import { followTurn, waitForAnswer, type EndEvent } from '../turn-follower.js';
import { cancelRunningTurn, STOP_NOTE, STOP_NOTE_DELAY_MS, validateContextId } from './turn-control.js';

const OPTIONS = {
  wait: { type: 'boolean' },
  context: { type: 'string', short: 'c' },
  json: { type: 'boolean' },
} as const;

/** `chatwait ask --help`. */
export const ASK_HELP = `Usage: chatwait ask [options] "message"
       echo "message" | chatwait ask [options]

Sends one message and writes the answer to stdout as it streams (then a newline, unless the
answer ends with one). A dropped connection is resumed where it broke (Last-Event-ID), so the
answer is printed exactly once. Tool steps and reconnects are noted on stderr.
Ctrl+C stops the answer on the server and exits with 130; so does a closed pipe (\`| head -1\`),
quietly, with 141.

Options:
  --wait             use POST /api/v1/chat/wait: print the whole answer when it is ready
  -c, --context ID   continue the conversation ID (default: a new conversation)
  --json             print the events as JSON lines, one per SSE event (with --wait: the response JSON)

${GLOBAL_OPTIONS_HELP}
`;

/** `chatwait ask`: one message, the answer to stdout, for scripts. */
export async function runAsk({ args, env, terminal, stdin }: CommandContext): Promise<number> {
  const { values, positionals } = parseCommandArguments(args, OPTIONS);
  if (values.help) {
    terminal.out.write(ASK_HELP);
    return EXIT_CODES.OK;
  }
  const client = new ApiClient(resolveConnection(values, env));
  const fromStdin = positionals.length === 0 || (positionals.length === 1 && positionals[0] === '-');
  if (fromStdin && stdin.isTTY) throw new UsageError('ask needs a message: chatwait ask "your question" (or pipe it in).');
  const message = fromStdin ? (await readAll(stdin)).replace(/\r?\n$/, '') : positionals.join(' ');
  if (message.trim() === '') throw new UsageError('The message is empty.');
  const request = { message, contextId: validateContextId(values.context) ?? randomUUID(), clientMessageId: randomUUID() };
  const { out, err } = terminal;

  // Ctrl+C once stops the answer on the server (and we wait for its end); twice quits at once.
  const quit = new AbortController();
  let stopRequested = false;
  let turnId: string | undefined;
  let noteTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (turnId) {
      void client.cancelTurn(turnId).catch((error: unknown) => {
        err.line(
          err.style.red(
            `chatwait: could not stop the answer: ${error instanceof CliError ? describeError(error) : oneLine(String(error))}`,
          ),
        );
      });
    }
  };
  const onInterrupt = () => {
    if (stopRequested || values.wait) {
      quit.abort();
      return;
    }
    stopRequested = true;
    stop();
    noteTimer = setTimeout(() => err.line(err.style.dim(STOP_NOTE)), STOP_NOTE_DELAY_MS);
  };
  // Nobody reads the answer any more (`| head -1`): stop it on the server, as Ctrl+C would, and quit quietly.
  const onOutputClosed = () => quit.abort();
  terminal.closed.addEventListener('abort', onOutputClosed);
  process.on('SIGINT', onInterrupt);
  try {
    if (values.wait) {
      const { answer, raw } = await waitForAnswer(client, request, {
        signal: quit.signal,
        onReconnect: createAnswerView(out, err).handlers.onReconnect,
      });
      if (values.json) out.line(out.json(raw));
      else {
        out.write(out.answerFilter()(String(answer.message)));
        out.endLine();
      }
      return answer.finish_reason === 'cancelled' ? EXIT_CODES.FAILED : EXIT_CODES.OK;
    }
    const view = createAnswerView(out, err);
    const end = await followTurn(
      client,
      request,
      {
        ...(values.json ? { onReconnect: view.handlers.onReconnect } : view.handlers),
        onStart(event) {
          turnId = event.turn_id;
          if (stopRequested) stop();
        },
        onEvent: values.json ? (data) => out.write(`${out.json(data)}\n`) : undefined,
      },
      { signal: quit.signal },
    );
    if (!values.json) out.endLine();
    return finish(end, stopRequested, terminal);
  } catch (error) {
    if (terminal.closed.aborted) {
      if (turnId) await client.cancelTurn(turnId).catch(() => undefined);
      else await cancelRunningTurn(client, request.contextId).catch(() => undefined);
      return EXIT_CODES.OUTPUT_CLOSED;
    }
    if (quit.signal.aborted) {
      // Quitting from wait mode: the answer would go on without us, so stop it.
      if (values.wait) await cancelRunningTurn(client, request.contextId).catch(() => undefined);
      out.endLine();
      return EXIT_CODES.INTERRUPTED;
    }
    if (error instanceof CliError) out.endLine();
    throw error;
  } finally {
    clearTimeout(noteTimer);
    terminal.closed.removeEventListener('abort', onOutputClosed);
    process.off('SIGINT', onInterrupt);
  }
}

/** The exit code of an answer that ended, with a note on stderr unless it completed. */
function finish(end: EndEvent, stopRequested: boolean, { err }: CommandContext['terminal']): number {
  if (end.finish_reason === 'stop') {
    const contextId = oneLine(String(end.context_id));
    if (err.isTTY) err.line(err.style.dim(`(conversation ${contextId}: continue with --context ${contextId})`));
    return EXIT_CODES.OK;
  }
  if (end.finish_reason === 'cancelled' && stopRequested) {
    err.line(err.style.dim('stopped.'));
    return EXIT_CODES.INTERRUPTED;
  }
  err.line(`chatwait: the answer ended early (${oneLine(String(end.finish_reason))}).`);
  return EXIT_CODES.FAILED;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
