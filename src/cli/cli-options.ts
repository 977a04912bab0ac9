import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError, type Connection } from './api-client.js';

/** The server address used without --url or CHATWAIT_URL. */
export const DEFAULT_URL = 'http://localhost:8000';

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpecs;

/** Text of the options every command takes, for the help pages. */
export const GLOBAL_OPTIONS_HELP = `Connection:
  --url URL          the ChatWait server (default: $CHATWAIT_URL, else ${DEFAULT_URL})
  --api-key KEY      sent as "Authorization: Bearer KEY" (default: $CHATWAIT_API_KEY)
  -h, --help         show this help`;

/** What a command's arguments parse into. */
export interface ParsedArguments<T extends OptionSpecs> {
  values: { [K in keyof (T & typeof GLOBAL_OPTIONS)]?: (T & typeof GLOBAL_OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };
  positionals: string[];
}

/** Parses a command's arguments strictly (an unknown option is a usage error), with the global options. */
export function parseCommandArguments<T extends OptionSpecs>(args: string[], options: T): ParsedArguments<T> {
  try {
    const parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return parsed as unknown as ParsedArguments<T>;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.replace(/\. To specify a positional argument.*$/s, '.') : String(error));
  }
}

/**
 * Finds the command: the first argument that is not an option or an option's value, so global
 * options may come before it (`chatwait --url URL ask …`). Returns it and the other arguments.
 */
export function splitCommand(args: string[]): { command: string | undefined; rest: string[] } {
  const { tokens } = parseArgs({ args, options: GLOBAL_OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const first = tokens.find((token) => token.kind === 'positional' || token.kind === 'option-terminator');
  if (!first || first.kind !== 'positional') return { command: undefined, rest: args };
  return { command: first.value, rest: [...args.slice(0, first.index), ...args.slice(first.index + 1)] };
}

/**
 * The server address and key from the flags, else the environment. A malformed URL, a URL with a
 * user name or password, or a key that cannot be sent as a header is a usage error, whose message
 * never shows the password or the key.
 */
export function resolveConnection(
  values: { url?: string | undefined; 'api-key'?: string | undefined },
  env: NodeJS.ProcessEnv,
): Connection {
  const raw = values.url ?? (env.CHATWAIT_URL || DEFAULT_URL);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// address (got ${JSON.stringify(redactUrl(raw))}).`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url must be an http:// or https:// address (got ${JSON.stringify(redactUrl(raw))}).`);
  }
  // fetch refuses such URLs, and the server takes an API key rather than a password.
  if (url.username !== '' || url.password !== '') {
    throw new UsageError(
      `--url must not hold a user name or password (got ${JSON.stringify(redactUrl(raw))}); pass an API key with --api-key or CHATWAIT_API_KEY.`,
    );
  }
  const apiKey = values['api-key'] ?? (env.CHATWAIT_API_KEY || undefined);
  if (apiKey !== undefined && !/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new UsageError(
      'The API key (--api-key or CHATWAIT_API_KEY) must be visible ASCII characters without spaces (the key is not shown here).',
    );
  }
  return { url: url.href.replace(/\/+$/, ''), apiKey };
}

/** A URL as it may be shown: a user name and password in it become `***`, parsable or not. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.username !== '' || url.password !== '') {
      url.username = '***';
      url.password = '';
      return url.href;
    }
  } catch {
    // Not a URL: cleaned below.
  }
  // Whatever stands before an @ where the user name and password would be (also in `user:password@host`).
  return raw.replace(/^([^@/?#]*?:\/*)[^/?#]*@/, '$1***@');
}

/** Parses a positive integer option, or throws a usage error naming it. */
export function parsePositiveInteger(name: string, value: string | undefined, maximum: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > maximum) {
    throw new UsageError(`--${name} must be an integer from 1 to ${maximum} (got ${JSON.stringify(value)}).`);
  }
  return Number(value);
}
