import type { Terminal } from './terminal.js';

/** What a command runs with: its arguments (the command name removed), the environment and the terminal. */
export interface CommandContext {
  args: string[];
  env: NodeJS.ProcessEnv;
  terminal: Terminal;
  stdin: NodeJS.ReadStream;
}

/** A `chatwait` command: resolves with the exit code, or throws a CliError (its exit code and message). */
export interface Command {
  summary: string;
  run(context: CommandContext): Promise<number>;
}
