import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { ApiClient, CliError, EXIT_CODES } from '../api-client.js';
import { createAnswerView, describeError } from '../answer-view.js';
import { GLOBAL_OPTIONS_HELP, parseCommandArguments, resolveConnection } from '../cli-options.js';
import type { CommandContext } from '../command.js';
import { oneLine } from '../terminal.js';
import { followTurn } from '../turn-follower.js';
import { STOP_NOTE, STOP_NOTE_DELAY_MS, validateContextId } from './turn-control.js';

const OPTIONS = { context: { type: 'string', short: 'c' } } as const;

/** `chatwait chat --help`. */
export const CHAT_HELP = `Usage: chatwait chat [options]

An interactive chat: type a message and press Enter; the answer streams in as it is written.
Every message goes to the same conversation. A dropped connection is resumed where it broke.

  Ctrl+C             stop the answer being written (on the server); press it again to quit
  Ctrl+C or Ctrl+D   at the prompt: quit
  /new               start a new conversation
  /exit              quit

With piped input, each line is one message, answered in turn; the chat ends after the last one
(exit code 1 if any of them failed).

Options:
  -c, --context ID   continue the conversation ID (default: a new conversation)

${GLOBAL_OPTIONS_HELP}
`;

/** One answer being written. */
interface RunningAnswer {
  controller: AbortController;
  turnId?: string;
  stopRequested: boolean;
  noteTimer?: NodeJS.Timeout;
}

/** `chatwait chat`: an interactive, streamed chat. */
export async function runChat({ args, env, terminal, stdin }: CommandContext): Promise<number> {
  const { values } = parseCommandArguments(args, OPTIONS);
  const { out, err } = terminal;
  if (values.help) {
    out.write(CHAT_HELP);
    return EXIT_CODES.OK;
  }
  const client = new ApiClient(resolveConnection(values, env));
  let contextId = validateContextId(values.context) ?? randomUUID();
  const interactive = stdin.isTTY === true && out.isTTY;
  const { dim, bold, red } = out.style;

  // Meet the server first: a wrong address or key is better said at once than after the first message.
  const { body: config } = await client.json<{ model?: { name?: string; demo?: boolean }; auth_required?: boolean }>('/api/v1/config');
  if (interactive) {
    const model = config.model?.name ? ` · model ${oneLine(String(config.model.name), 100)}${config.model.demo ? ' (demo)' : ''}` : '';
    out.line(dim(`ChatWait at ${client.connection.url}${model} · conversation ${contextId}`));
    out.line(dim('Enter sends · Ctrl+C stops an answer · Ctrl+C or Ctrl+D at the prompt quits · /new, /exit'));
  }
  if (config.auth_required && !client.connection.apiKey)
    err.line(err.style.yellow('This server needs an API key: pass --api-key or set CHATWAIT_API_KEY.'));

  const lines = createInterface({
    input: stdin,
    output: out.stream,
    terminal: interactive,
    prompt: bold('› '),
    historySize: interactive ? 100 : 0,
  });
  const queue: string[] = [];
  let inputClosed = false;
  let current: RunningAnswer | undefined;
  let pumping = false;
  let failures = 0;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));
  let finished = false;
  const finish = (code: number) => {
    if (finished) return;
    finished = true;
    current?.controller.abort();
    lines.close();
    resolveExit(code);
  };

  const stop = (answer: RunningAnswer) => {
    if (!answer.turnId) return;
    client.cancelTurn(answer.turnId).catch((error: unknown) => {
      err.line(err.style.red(`could not stop the answer: ${error instanceof CliError ? describeError(error) : oneLine(String(error))}`));
    });
  };

  const send = async (message: string) => {
    const answer: RunningAnswer = { controller: new AbortController(), stopRequested: false };
    current = answer;
    // On a terminal, notes (tool steps, reconnects) go with the answer; piped, stdout holds only answers.
    const view = createAnswerView(out, interactive ? out : err);
    try {
      const end = await followTurn(
        client,
        { message, contextId, clientMessageId: randomUUID() },
        {
          ...view.handlers,
          onStart(event) {
            answer.turnId = event.turn_id;
            contextId = event.context_id;
            if (answer.stopRequested) stop(answer);
          },
        },
        { signal: answer.controller.signal },
      );
      out.endLine();
      if (end.finish_reason === 'cancelled') out.line(dim('[stopped]'));
      else if (end.finish_reason !== 'stop') {
        failures++;
        out.line(red(`[the answer ended early: ${oneLine(String(end.finish_reason))}]`));
      }
    } catch (error) {
      if (answer.controller.signal.aborted) return;
      failures++;
      out.endLine();
      err.line(err.style.red(error instanceof CliError ? describeError(error) : oneLine(String(error))));
    } finally {
      clearTimeout(answer.noteTimer);
      current = undefined;
      if (interactive) out.write('\n');
    }
  };

  const handle = async (line: string) => {
    const text = line.trim();
    if (text === '') return;
    if (text === '/exit' || text === '/quit') return finish(EXIT_CODES.OK);
    if (text === '/new') {
      contextId = randomUUID();
      out.line(dim(`new conversation ${contextId}`));
      return;
    }
    await send(line);
  };

  // One message at a time, in order; lines typed or piped meanwhile wait their turn.
  const pump = async () => {
    if (pumping) return;
    pumping = true;
    try {
      while (!finished && queue.length > 0) await handle(queue.shift()!);
    } finally {
      pumping = false;
    }
    if (finished) return;
    if (inputClosed) finish(failures > 0 && !interactive ? EXIT_CODES.FAILED : EXIT_CODES.OK);
    else if (interactive) prompt();
  };

  const prompt = () => {
    lines.prompt();
    // The cursor now stands after the prompt, which readline wrote past our line tracking.
    out.atLineStart = false;
  };

  const onInterrupt = () => {
    if (!current) {
      out.endLine();
      return finish(EXIT_CODES.OK);
    }
    if (current.stopRequested) {
      out.endLine();
      return finish(EXIT_CODES.INTERRUPTED);
    }
    const answer = current;
    answer.stopRequested = true;
    stop(answer);
    // A stop usually ends the answer at once; only a slow one gets a note (which would break the answer's line).
    answer.noteTimer = setTimeout(() => {
      if (current !== answer) return;
      if (err.isTTY && out.isTTY) out.endLine();
      err.line(err.style.dim(STOP_NOTE));
    }, STOP_NOTE_DELAY_MS);
  };

  lines.on('line', (line) => {
    // Enter moved the cursor to a new line.
    if (interactive) out.atLineStart = true;
    queue.push(line);
    void pump();
  });
  lines.on('close', () => {
    inputClosed = true;
    if (interactive && !finished && !current) out.endLine();
    void pump();
  });
  // Nobody reads the answers any more (`| head`): stop the one being written and quit quietly.
  let stopping: Promise<unknown> | undefined;
  const onOutputClosed = () => {
    const answer = current;
    if (answer?.turnId) stopping = client.cancelTurn(answer.turnId).catch(() => undefined);
    finish(EXIT_CODES.OUTPUT_CLOSED);
  };
  terminal.closed.addEventListener('abort', onOutputClosed);
  // On a terminal, readline reads Ctrl+C as a key; otherwise it arrives as a signal.
  lines.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);
  if (interactive) prompt();
  try {
    const code = await exited;
    await stopping;
    return code;
  } finally {
    terminal.closed.removeEventListener('abort', onOutputClosed);
    process.off('SIGINT', onInterrupt);
  }
}
