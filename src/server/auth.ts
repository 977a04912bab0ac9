import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../errors.js';

/** Paths anyone may call even when API keys are on: health, docs and the page. */
const PUBLIC_PATH = /^\/(health|api\/v1\/health(\/live|\/ready)?|docs|docs\/.*|openapi\.json|redoc(\/.*)?)?$/;

/**
 * With `API_KEYS` set, every API route but health and docs requires `Authorization: Bearer <key>`.
 * Keys are compared as SHA-256 digests in constant time, so neither their content nor length leaks.
 */
export function registerApiKeyAuth(app: FastifyInstance, keys: readonly string[]): void {
  if (keys.length === 0) return;
  const digests = keys.map(digest);
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!;
    if (PUBLIC_PATH.test(path) || !path.startsWith('/api/')) return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const presented = match ? digest(match[1]!) : undefined;
    // Compare against every key, whatever matches, so the time taken says nothing about which one.
    let valid = false;
    for (const candidate of digests) valid = (presented !== undefined && timingSafeEqual(candidate, presented)) || valid;
    if (!valid) {
      throw new RequestError('UNAUTHORIZED', 'This server needs an API key: send the header Authorization: Bearer <key>.', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
  });
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
