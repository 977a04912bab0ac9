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

/** Creates the process's JSON logger. */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'DEBUG'>) {
  return pino({
    level: config.DEBUG && config.LOG_LEVEL === 'info' ? 'debug' : config.LOG_LEVEL,
    base: { service: 'chatwait' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  });
}
