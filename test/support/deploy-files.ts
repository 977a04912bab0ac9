import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';

/** The repository's root, where Dockerfile, compose.yaml and deploy/ are. */
export const ROOT = resolve(import.meta.dirname, '../..');

/** One service of compose.yaml, as far as the tests read it. */
export interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] | string };
  volumes?: string[];
  ports?: string[];
  command?: string[];
  stop_grace_period?: string;
}

/** compose.yaml parsed as Docker Compose reads it (its `<<: *anchor` merges applied). */
export function readCompose(): { services: Record<string, ComposeService>; volumes?: Record<string, unknown> } {
  return parse(readFileSync(resolve(ROOT, 'compose.yaml'), 'utf8'), { merge: true });
}

/** The names of the ChatWait services: those built from this repository. */
export function chatWaitServices(compose: ReturnType<typeof readCompose>): string[] {
  return Object.entries(compose.services)
    .filter(([, service]) => service.build !== undefined)
    .map(([name]) => name);
}

/**
 * A compose value with its `${…}` references resolved as Docker Compose does: `${NAME}`,
 * `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`, `${NAME:+other}`, and
 * `$$` for a dollar sign. A required variable that `variables` lacks throws, naming it.
 */
export function interpolate(value: string, variables: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([^}]*))?\}/g, (whole, name, colon, operator, argument) => {
    if (whole === '$$') return '$';
    const set = name in variables && (colon !== ':' || variables[name] !== '');
    const current = variables[name] ?? '';
    if (operator === undefined) return current;
    if (operator === '-') return set ? current : argument;
    if (operator === '+') return set ? argument : '';
    if (!set) throw new Error(`compose needs ${name}: ${argument}`);
    return current;
  });
}

/** A ChatWait service's environment as its process gets it, its `${…}` resolved with `variables`. */
export function serviceEnvironment(service: ComposeService, variables: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([name, value]) => [name, interpolate(String(value ?? ''), variables)]),
  );
}
