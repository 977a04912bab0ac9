import { pino } from 'pino';
import type { Config } from '../config.js';

/** The logging surface the code below the HTTP layer uses; pino's logger satisfies it. */
export interface Logger {
  info(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  error(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
}

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'apiKey',
  'api_key',
  '*.apiKey',
  '*.api_key',
];

/**
 * How errors appear in logs: their type, code, HTTP status and the first line of their message. No
 * stack (unless DEBUG) and never an upstream response body, which may echo a prompt or a key.
 */
export function serializeError(debug: boolean) {
  return (error: unknown): Record<string, unknown> => {
    if (!(error instanceof Error)) return { type: typeof error };
    const fields: Record<string, unknown> = { type: error.name };
    const { code, status } = error as { code?: unknown; status?: unknown };
    if (typeof code === 'string' || typeof code === 'number') fields.code = code;
    if (typeof status === 'number') fields.status = status;
    // A provider's error message quotes its response body: its status says enough.
    else fields.message = error.message.split('\n')[0]!.slice(0, 200);
    if (error.cause instanceof Error) fields.cause = serializeError(debug)(error.cause);
    if (debug) fields.stack = error.stack;
    return fields;
  };
}

/** Creates the process's JSON logger. */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'DEBUG'>) {
  return pino({
    level: config.DEBUG && config.LOG_LEVEL === 'info' ? 'debug' : config.LOG_LEVEL,
    base: { service: 'chatwait' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError(config.DEBUG) },
  });
}
