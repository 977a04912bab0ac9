import type { Writable } from 'node:stream';
import { createControlFilter, escapeJsonControls, stripControls } from './sanitize.js';

/** ANSI styles, or identity functions when colours are off. */
export interface Styles {
  enabled: boolean;
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
}

/** A stream the client writes to, with its styles and whether the last character written ended a line. */
export interface OutputStream {
  stream: Writable;
  isTTY: boolean;
  style: Styles;
  /** True when nothing was written yet or the last text written ended with a newline. */
  atLineStart: boolean;
  write(text: string): void;
  /** Writes a whole line, first ending a line left open. */
  line(text: string): void;
  /** Ends a line left open, if any. */
  endLine(): void;
  /**
   * A filter for server text written as it arrives (an answer's tokens): on a terminal it removes
   * escape sequences and control characters but newline and tab; elsewhere (a pipe, a file) the
   * text stays byte-exact.
   */
  answerFilter(): (text: string) => string;
  /** JSON from the server as written here: exact, but on a terminal with control characters escaped (the same JSON). */
  json(text: string): string;
}

/** Where the client writes: stdout for answers and results, stderr for everything else. */
export interface Terminal {
  out: OutputStream;
  err: OutputStream;
  /** Aborted once a write to stdout or stderr fails (EPIPE: `chatwait ask … | head -1` has read enough). */
  closed: AbortSignal;
}

function style(enabled: boolean, open: number, close: number): (text: string) => string {
  return enabled ? (text) => `\u001b[${open}m${text}\u001b[${close}m` : (text) => text;
}

/** Styles for a stream: colours only on a terminal, never with NO_COLOR set (https://no-color.org) or TERM=dumb. */
export function createStyles(isTTY: boolean, env: NodeJS.ProcessEnv): Styles {
  const enabled = isTTY && !(env.NO_COLOR !== undefined && env.NO_COLOR !== '') && env.TERM !== 'dumb';
  return {
    enabled,
    bold: style(enabled, 1, 22),
    dim: style(enabled, 2, 22),
    red: style(enabled, 31, 39),
    green: style(enabled, 32, 39),
    yellow: style(enabled, 33, 39),
    cyan: style(enabled, 36, 39),
  };
}

/** Wraps a writable stream, remembering whether it is mid-line. */
export function createOutputStream(stream: Writable & { isTTY?: boolean }, env: NodeJS.ProcessEnv): OutputStream {
  const isTTY = stream.isTTY === true;
  const output: OutputStream = {
    stream,
    isTTY,
    style: createStyles(isTTY, env),
    atLineStart: true,
    write(text) {
      if (text === '' || stream.destroyed) return;
      stream.write(text);
      output.atLineStart = text.endsWith('\n');
    },
    line(text) {
      output.endLine();
      output.write(`${text}\n`);
    },
    endLine() {
      if (!output.atLineStart) output.write('\n');
    },
    answerFilter: () => (isTTY ? createControlFilter() : (text) => text),
    json: (text) => (isTTY ? escapeJsonControls(text) : text),
  };
  return output;
}

/** The process's terminal. */
export function createTerminal(env: NodeJS.ProcessEnv): Terminal {
  const closed = new AbortController();
  // A reader that went away is not a crash: the commands see `closed` and stop quietly.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => closed.abort());
  return { out: createOutputStream(process.stdout, env), err: createOutputStream(process.stderr, env), closed: closed.signal };
}

/**
 * Server text shown as one line (a tool step, a title, an error message, a health detail),
 * terminal or not: control characters and escape sequences removed, whitespace runs collapsed,
 * cut to at most `length` characters.
 */
export function oneLine(text: string, length = Infinity): string {
  const flat = stripControls(text).replace(/\s+/g, ' ').trim();
  if (flat.length <= length) return flat;
  const characters = [...flat];
  return characters.length <= length ? flat : `${characters.slice(0, length - 1).join('')}…`;
}

/** Waits until everything written to a stream has been handed to the OS, so an exit right after loses nothing. */
export function flush(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.writableLength === 0) resolve();
    else stream.write('', () => resolve());
  });
}
