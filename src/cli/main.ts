#!/usr/bin/env node
import { readPackageVersion } from '../version.js';
import { CliError, EXIT_CODES, UsageError } from './api-client.js';
import { describeError } from './answer-view.js';
import { GLOBAL_OPTIONS_HELP, splitCommand } from './cli-options.js';
import type { Command, CommandContext } from './command.js';
import { runAsk } from './commands/ask.js';
import { runChat } from './commands/chat.js';
import { runConversations } from './commands/conversations.js';
import { runHealth } from './commands/health.js';
import { runSmoke } from './commands/smoke.js';
import { createTerminal, flush, oneLine } from './terminal.js';

/** The commands, in the order the help lists them. */
const COMMANDS: Record<string, Command> = {
  chat: { summary: 'chat interactively; answers stream in, Ctrl+C stops one', run: runChat },
  ask: { summary: 'send one message, the answer to stdout (for scripts)', run: runAsk },
  conversations: { summary: 'list conversations', run: runConversations },
  health: { summary: "the server's health and readiness", run: runHealth },
  smoke: { summary: 'check a running server end to end', run: runSmoke },
};

/** `chatwait --help`. */
const MAIN_HELP = `chatwait: the terminal client of a ChatWait server

Usage: chatwait <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  ${name.padEnd(15)}${command.summary}`)
  .join('\n')}

Run "chatwait <command> --help" for a command's options.

${GLOBAL_OPTIONS_HELP}
  --version          print the version

Exit codes: 0 success; 1 the server answered with an error, an answer did not complete or a
check failed; 2 wrong usage; 3 the server cannot be reached (or a lost connection could not be
resumed); 130 stopped with Ctrl+C; 141 the output was closed (\`| head\`), the answer stopped.
`;

/** Runs the client with these arguments and resolves with its exit code. */
async function runCli(args: string[], context: Omit<CommandContext, 'args'>): Promise<number> {
  const { err, out } = context.terminal;
  try {
    const { command, rest } = splitCommand(args);
    if (command === undefined) {
      if (rest.includes('--version')) {
        out.line(readPackageVersion());
        return EXIT_CODES.OK;
      }
      if (rest.includes('--help') || rest.includes('-h')) {
        out.write(MAIN_HELP);
        return EXIT_CODES.OK;
      }
      err.write(MAIN_HELP);
      return EXIT_CODES.USAGE;
    }
    const selected = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!selected) throw new UsageError(`Unknown command "${command}". The commands are: ${Object.keys(COMMANDS).join(', ')}.`);
    try {
      return await selected.run({ ...context, args: rest });
    } catch (error) {
      if (error instanceof UsageError) throw new UsageError(`${error.message} See "chatwait ${command} --help".`);
      throw error;
    }
  } catch (error) {
    if (context.terminal.closed.aborted) return EXIT_CODES.OUTPUT_CLOSED;
    if (error instanceof CliError) {
      err.line(`chatwait: ${err.style.red(describeError(error))}`);
      return error.exitCode;
    }
    err.line(`chatwait: ${err.style.red(oneLine(error instanceof Error ? error.message : String(error)))}`);
    return EXIT_CODES.FAILED;
  }
}

const terminal = createTerminal(process.env);
const result = await runCli(process.argv.slice(2), { env: process.env, terminal, stdin: process.stdin });
// Once nobody reads the output, say nothing more: the exit code is what a closed pipe gives any program.
const code = terminal.closed.aborted ? EXIT_CODES.OUTPUT_CLOSED : result;
await Promise.all([flush(process.stdout), flush(process.stderr)]);
// Exit now: an idle keep-alive connection or a paused stdin must not hold the process open.
process.exit(code);
