import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import net from 'node:net';
import { resolve } from 'node:path';

/** The compiled client (built by the global setup, as `npm run build` does). */
/** A colour (SGR) escape sequence, as the client writes on a terminal. */
// eslint-disable-next-line no-control-regex
export const SGR = /\u001b\[\d+m/;

export const CLI_MAIN = resolve(import.meta.dirname, '../../dist/cli/main.js');

/** A running `chatwait` process with what it has written so far. */
export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited and its output is read. */
  exited: Promise<number | string>;
  /** Resolves once stdout (or stderr) satisfies the predicate; rejects if the process exits first. */
  waitFor(predicate: (output: { stdout: string; stderr: string }) => boolean, what: string): Promise<void>;
}

/** An environment with nothing of the developer's: no CHATWAIT_URL, no key, no colours asked for. */
export function cliEnv(env: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env };
}

/** How to start the client: `node <script>` by default, or another executable given the arguments as they are. */
export interface StartOptions {
  script?: string;
  executable?: string;
}

/** Starts `node dist/cli/main.js …args` (or another script or executable) with a clean environment plus `env`. */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  { script = CLI_MAIN, executable }: StartOptions = {},
): CliProcess {
  const child = executable
    ? spawn(executable, args, { env: cliEnv(env) })
    : spawn(process.execPath, [script, ...args], { env: cliEnv(env) });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of waiters) waiter();
  };
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    notify();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    notify();
  });
  const exited = new Promise<number | string>((resolveExit) =>
    child.on('close', (code, signal) => resolveExit(code ?? signal ?? 'unknown')),
  );
  const waitFor = (predicate: (output: { stdout: string; stderr: string }) => boolean, what: string) =>
    new Promise<void>((resolveWait, reject) => {
      const check = () => {
        if (!predicate({ stdout, stderr })) return false;
        waiters.delete(check);
        resolveWait();
        return true;
      };
      if (check()) return;
      waiters.add(check);
      void exited.then((code) => {
        if (waiters.delete(check)) reject(new Error(`chatwait exited (${code}) before ${what}.\nstdout: ${stdout}\nstderr: ${stderr}`));
      });
    });
  return { child, stdout: () => stdout, stderr: () => stderr, exited, waitFor };
}

/** Runs `chatwait …args` to the end, with `input` on stdin; resolves with its exit code and output. */
export async function runCli(args: string[], options: StartOptions & { env?: Record<string, string>; input?: string } = {}) {
  const cli = startCli(args, options.env, options);
  cli.child.stdin.end(options.input ?? '');
  const code = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}

/** The answer as `ask` prints it: the text, then a newline unless it ends with one. */
export function printed(answer: string): string {
  return answer === '' || answer.endsWith('\n') ? answer : `${answer}\n`;
}

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

/**
 * Whether util-linux `script` is here to give the client a pseudo terminal; without it, warns that
 * the pseudo-terminal tests are skipped, or throws (failing the test file) with
 * CHATWAIT_REQUIRE_PTY=1, which CI sets in .ci/run. Call it at the top of a test file.
 */
export function pseudoTerminalAvailable(): boolean {
  if (spawnSync('script', ['--version']).status === 0) return true;
  const message = 'the terminal client in a pseudo terminal needs `script` (util-linux, Debian package bsdutils), which is not installed';
  if (process.env.CHATWAIT_REQUIRE_PTY === '1') throw new Error(`${message} (CHATWAIT_REQUIRE_PTY=1)`);
  console.warn(`\n*** SKIPPED: ${message}. ***\n`);
  return false;
}

/** `chatwait …args` in a pseudo terminal (through `script`), stdout and stderr both on it. */
export function startInTerminal(args: string[], env: Record<string, string> = {}) {
  const quote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;
  const command = [process.execPath, CLI_MAIN, ...args].map(quote).join(' ');
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { env: cliEnv({ TERM: 'xterm', ...env }) });
  let output = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    for (const waiter of waiters) waiter();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  /** The terminal's output with CRLF as LF. */
  const text = () => output.replaceAll('\r\n', '\n');
  const waitFor = (predicate: (text: string) => boolean, what: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!predicate(text())) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
      const fail = (why: string) => waiters.delete(check) && reject(new Error(`${why} before ${what}:\n${JSON.stringify(text())}`));
      void exited.then(() => fail('the terminal closed'));
      setTimeout(() => fail('15 s went by'), 15_000).unref();
    });
  return { child, text, exited, waitFor, type: (keys: string) => child.stdin.write(keys) };
}
