import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseEnv } from 'node:util';
import { z } from 'zod';

const TRUE_WORDS = new Set(['1', 'true', 'yes', 'on']);
const FALSE_WORDS = new Set(['0', 'false', 'no', 'off']);

/** Variables whose values must never be echoed back, even in a configuration error. */
const SECRET_VARIABLES = new Set(['GEMINI_API_KEY', 'OPENAI_API_KEY', 'API_KEYS', 'DATABASE_URL', 'REDIS_URL']);
const KEY_PATTERN = /^[\x21-\x7e]{8,256}$/;

/** A TRUST_PROXY entry: an IPv4 or IPv6 address, optionally with a prefix length its family allows (/0-32, /0-128). */
function isProxyAddress(entry: string): boolean {
  const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry);
  if (!match) return false;
  const family = isIP(match[1]!);
  if (family === 0) return false;
  return match[2] === undefined || Number(match[2]) <= (family === 4 ? 32 : 128);
}

const booleanVariable = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return fallback;
      const word = value.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      context.addIssue({ code: 'custom', message: 'must be true or false (also 1/0, yes/no, on/off)' });
      return z.NEVER;
    });

const numberVariable = <F extends number | undefined>(fallback: F, min: number, max: number, integer = true, why?: string) =>
  z
    .string()
    .optional()
    .transform((value, context): number | F => {
      if (value === undefined) return fallback;
      const parsed = Number(value.trim());
      const kind = integer ? 'an integer' : 'a number';
      if (value.trim() === '' || !Number.isFinite(parsed) || (integer && !Number.isInteger(parsed)) || parsed < min || parsed > max) {
        context.addIssue({ code: 'custom', message: `must be ${kind} from ${min} to ${max}${why ? ` (${why})` : ''}` });
        return z.NEVER;
      }
      return parsed;
    });

const enumVariable = <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
  z
    .string()
    .optional()
    .transform((value, context): T[number] => {
      if (value === undefined) return fallback;
      const word = value.trim().toLowerCase();
      if ((values as readonly string[]).includes(word)) return word as T[number];
      context.addIssue({ code: 'custom', message: `must be one of ${values.join(', ')}` });
      return z.NEVER;
    });

const urlVariable = (protocols: readonly string[], description: string) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return undefined;
      try {
        const url = new URL(value.trim());
        if (protocols.includes(url.protocol)) return url.toString();
      } catch {
        // reported below
      }
      context.addIssue({ code: 'custom', message: `must be ${description}` });
      return z.NEVER;
    });

/** A comma-separated list, or a JSON list of strings (`["a","b"]`, as the original Python ChatWait's settings took them). */
const listVariable = (itemPattern: RegExp, description: string, normalize: (item: string) => string = (item) => item) =>
  z
    .string()
    .optional()
    .transform((value, context) => {
      if (value === undefined) return [] as string[];
      const items = (parseJsonList(value) ?? value.split(',')).map((item) => item.trim()).filter((item) => item !== '');
      const normalized = items.map((item) => (itemPattern.test(item) ? normalizeSafely(normalize, item) : undefined));
      if (normalized.some((item) => item === undefined)) {
        context.addIssue({ code: 'custom', message: `must be a comma-separated list of ${description}, or a JSON list of them` });
        return z.NEVER;
      }
      return normalized as string[];
    });

function normalizeSafely(normalize: (item: string) => string, item: string): string | undefined {
  try {
    return normalize(item);
  } catch {
    return undefined;
  }
}

/** The strings of a JSON list, or undefined when the value is not one. */
function parseJsonList(value: string): string[] | undefined {
  if (!value.trim().startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    // A list with anything but strings in it is reported by the pattern check.
    if (Array.isArray(parsed)) return parsed.map((item) => (typeof item === 'string' ? item : '\0'));
  } catch {
    // Not JSON after all: read as a comma-separated list (and most likely reported as invalid).
  }
  return undefined;
}

/** The tools ChatWait ships with, as `TOOLS` names them (src/model/tools/ implements each). */
export const BUILT_IN_TOOLS = ['get_current_time', 'calculate', 'convert_units'] as const;

/** The name of one built-in tool. */
export type BuiltInToolName = (typeof BUILT_IN_TOOLS)[number];

const toolsVariable = z
  .string()
  .optional()
  .transform((value, context): BuiltInToolName[] => {
    if (value === undefined) return [...BUILT_IN_TOOLS];
    const names = value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    if (names.length === 1 && names[0]!.toLowerCase() === 'none') return [];
    const unknown = names.find((name) => !(BUILT_IN_TOOLS as readonly string[]).includes(name));
    if (unknown !== undefined || names.length === 0) {
      context.addIssue({ code: 'custom', message: `must be none or a comma-separated list of ${BUILT_IN_TOOLS.join(', ')}` });
      return z.NEVER;
    }
    return [...new Set(names as BuiltInToolName[])];
  });

const databaseUrl = z
  .string()
  .optional()
  .transform((value, context) => {
    const url = (value ?? 'sqlite:./data/chatwait.db').trim();
    if (url === 'memory' || /^sqlite:.+/.test(url) || /^postgres(ql)?:\/\/.+/.test(url)) return url;
    context.addIssue({ code: 'custom', message: 'must be memory, sqlite:<path> or postgres://…' });
    return z.NEVER;
  });

/**
 * The shortest INSTANCE_TIMEOUT_SECONDS: a heartbeat every third of it, each allowed 1.75 s (the store's
 * operation timeout). After a failed heartbeat its connection is dropped, so the next one may first take
 * up to 1.5 s to connect, then 1.75 s for its statement: 3.25 s. The longest gap between two heartbeats
 * is then 2 × timeout/3 + 3.25 s, which stays under the timeout only above 9.75 s.
 */
export const MIN_INSTANCE_TIMEOUT_SECONDS = 10;

/** A Redis URL as ioredis reads it: redis:// (rediss:// for TLS), a host, an optional port and database number. */
const redisUrl = z
  .string()
  .optional()
  .transform((value, context) => {
    if (value === undefined) return undefined;
    try {
      const url = new URL(value.trim());
      if ((url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && /^\/?(\d+)?$/.test(url.pathname)) {
        return url.toString();
      }
    } catch {
      // reported below
    }
    context.addIssue({
      code: 'custom',
      message: 'must be a redis:// or rediss:// URL with a host, such as redis://localhost:6379 or rediss://user:password@host:6380/0',
    });
    return z.NEVER;
  });

/** The schema of every configuration variable; the Config type is inferred from it. */
const configSchema = z
  .object({
    HOST: z.string().default('localhost'),
    PORT: numberVariable(8000, 0, 65535),
    DEBUG: booleanVariable(false),
    LOG_LEVEL: enumVariable(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    ENVIRONMENT: z.string().default('development'),

    LLM_PROVIDER: enumVariable(['auto', 'gemini', 'openai', 'demo'], 'auto'),
    GEMINI_API_KEY: z.string().optional(),
    GEMINI_MODEL: z.string().default('gemini-2.5-flash'),
    GEMINI_BASE_URL: urlVariable(['https:', 'http:'], 'an http(s) URL').transform(
      (value) => value ?? 'https://generativelanguage.googleapis.com/v1beta/openai/',
    ),
    OPENAI_API_KEY: z.string().optional(),
    OPENAI_BASE_URL: urlVariable(['https:', 'http:'], 'an http(s) URL such as http://localhost:11434/v1'),
    OPENAI_MODEL: z.string().default('gpt-4o-mini'),
    SYSTEM_PROMPT: z.string().optional(),
    MAX_OUTPUT_TOKENS: numberVariable(8192, 1, 1_000_000),
    RESPONSE_TIMEOUT_SECONDS: numberVariable(30, 0.1, 3600, false),
    UPSTREAM_MAX_RETRIES: numberVariable(2, 0, 10),
    UPSTREAM_RETRY_DELAY_MS: numberVariable(500, 0, 60_000),
    DEMO_TOKENS_PER_SECOND: numberVariable(40, 0, 1_000_000, false),
    DEMO_RESPONSE_TOKENS: numberVariable(60, 1, 1_000_000),
    TOOLS: toolsVariable,
    TOOLS_DIR: z.string().optional(),
    TOOL_TIMEOUT_SECONDS: numberVariable(10, 0.01, 3600, false),
    TOOL_MAX_ROUNDS: numberVariable(5, 1, 50),

    RATE_LIMIT_REQUESTS_PER_MINUTE: numberVariable(60, 0, 1_000_000),
    RATE_LIMIT_BURST: numberVariable(10, 0, 1_000_000),
    STREAM_TTL_SECONDS: numberVariable(300, 0.01, 7 * 24 * 3600, false),
    REPLAY_LOG_MAX_BYTES: numberVariable(64 * 1_048_576, 0, 1_099_511_627_776),
    SHUTDOWN_DRAIN_SECONDS: numberVariable(30, 0, 3600, false),
    INSTANCE_TIMEOUT_SECONDS: numberVariable(
      30,
      MIN_INSTANCE_TIMEOUT_SECONDS,
      3600,
      false,
      'heartbeats are written every third of it and one after a failure may take up to 3.25 s (reconnect and write) on a slow database: less would let live instances reap each other',
    ),
    SSE_HEARTBEAT_SECONDS: numberVariable(15, 0.05, 3600, false),
    MAX_BODY_BYTES: numberVariable(1_048_576, 1024, 100 * 1_048_576),
    HISTORY_MAX_MESSAGES: numberVariable(50, 0, 10_000),
    HISTORY_MAX_CHARS: numberVariable(48_000, 0, 10_000_000),

    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_WRITE_WINDOW_MS: numberVariable(25, 0, 1000),
    REDIS_LEASE_SECONDS: numberVariable(30, 1, 3600, false),
    API_KEYS: listVariable(/^[\x21-\x7e]{8,256}$/, 'keys of 8 to 256 visible ASCII characters'),
    API_KEYS_FILE: z.string().optional(),
    TRUST_PROXY: z
      .string()
      .optional()
      .transform((value, context): boolean | number | string[] => {
        if (value === undefined) return false;
        const word = value.trim().toLowerCase();
        // A hop count first: `1` trusts only the direct peer (the last X-Forwarded-For entry), where `true` would trust
        // the whole header, which the client can forge.
        if (/^\d{1,2}$/.test(word)) return Number(word) === 0 ? false : Number(word);
        if (TRUE_WORDS.has(word)) return true;
        if (FALSE_WORDS.has(word)) return false;
        const addresses = value
          .split(',')
          .map((item) => item.trim())
          .filter((item) => item !== '');
        if (addresses.length > 0 && addresses.every(isProxyAddress)) return addresses;
        context.addIssue({
          code: 'custom',
          message: 'must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses (CIDR allowed)',
        });
        return z.NEVER;
      }),
    MAX_STREAMS_PER_CLIENT: numberVariable(5, 0, 100_000),
    MAX_GENERATING_TURNS_PER_CLIENT: numberVariable(3, 0, 100_000),
    REQUEST_TIMEOUT_SECONDS: numberVariable(30, 0.1, 3600, false),
    MAX_CONNECTIONS_PER_CLIENT: numberVariable(256, 0, 1_000_000),
    MAX_PENDING_CONNECTIONS: numberVariable(1024, 0, 1_000_000),
    SSE_MAX_BUFFER_BYTES: numberVariable(262_144, 16_384, 1_073_741_824),
    SSE_STALL_TIMEOUT_SECONDS: numberVariable(30, 0.1, 3600, false),
    ALLOWED_ORIGINS: listVariable(/^(\*|https?:\/\/[^\s/]+\/?)$/, 'origins such as https://chat.example.com (or *)', (item) =>
      item === '*' ? item : new URL(item).origin,
    ),
    ALLOWED_HOSTS: listVariable(
      /^(\*|(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])$/,
      'host names such as chat.example.com (or *)',
      (item) => item.toLowerCase().replace(/\.$/, ''),
    ),

    DEFAULT_CHAT_MODE: enumVariable(['wait', 'streaming'], 'streaming'),
    SHOW_MODE_SELECTOR: booleanVariable(true),
  })
  .superRefine((config, context) => {
    if (config.LLM_PROVIDER === 'gemini' && !config.GEMINI_API_KEY) {
      context.addIssue({ code: 'custom', path: ['GEMINI_API_KEY'], message: 'is required when LLM_PROVIDER=gemini' });
    }
    if (config.LLM_PROVIDER === 'openai' && !config.OPENAI_BASE_URL && !config.OPENAI_API_KEY) {
      context.addIssue({
        code: 'custom',
        path: ['OPENAI_BASE_URL'],
        message: 'or OPENAI_API_KEY is required when LLM_PROVIDER=openai',
      });
    }
  });

/** The names of every configuration variable. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(configSchema.shape);

/** The validated, frozen configuration of one ChatWait process. */
export type Config = Readonly<z.output<typeof configSchema>>;

/** The model provider a configuration resolves to, after `LLM_PROVIDER=auto` is decided. */
export type ProviderName = 'gemini' | 'openai' | 'demo';

/** Raised when the environment holds an invalid value; its message is one line naming the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses and validates configuration from an environment-like record (and an optional .env file). */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env, envFile: string | undefined = '.env'): Config {
  const fromFile = envFile && existsSync(envFile) ? parseEnv(readFileSync(envFile, 'utf8')) : {};
  const merged: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...fromFile, ...environment })) {
    // An empty value in .env or the environment means "not set", as most tools read it.
    if (value !== undefined && value.trim() !== '' && name in configSchema.shape) merged[name] = value;
  }
  const result = configSchema.safeParse(merged);
  if (result.success && result.data.API_KEYS_FILE) {
    result.data.API_KEYS = [...result.data.API_KEYS, ...readKeysFile(result.data.API_KEYS_FILE)];
  }
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? 'configuration');
    const raw = merged[name];
    const got = raw === undefined || SECRET_VARIABLES.has(name) ? '' : ` (got ${JSON.stringify(raw)})`;
    throw new ConfigError(`Invalid configuration: ${name} ${issue.message}${got}`);
  }
  return Object.freeze(result.data);
}

/** Reads API keys from a file: one per line; blank lines and lines starting with # are skipped. */
function readKeysFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(`Invalid configuration: API_KEYS_FILE must name a readable file (got ${JSON.stringify(path)})`);
  }
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (keys.some((key) => !KEY_PATTERN.test(key))) {
    throw new ConfigError('Invalid configuration: API_KEYS_FILE must hold keys of 8 to 256 visible ASCII characters, one per line');
  }
  return keys;
}

/** Decides which model provider serves the turns: `auto` prefers Gemini, then an OpenAI-compatible endpoint, then the demo model. */
export function resolveProvider(config: Config): ProviderName {
  if (config.LLM_PROVIDER !== 'auto') return config.LLM_PROVIDER;
  if (config.GEMINI_API_KEY) return 'gemini';
  if (config.OPENAI_BASE_URL || config.OPENAI_API_KEY) return 'openai';
  return 'demo';
}
