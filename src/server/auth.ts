import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../errors.js';
import { isApiRoute } from './api-routes.js';

/** API routes anyone may call even when keys are on. */
const PUBLIC_API_ROUTES = new Set(['/api/v1/health', '/api/v1/health/live', '/api/v1/health/ready', '/api/v1/config']);

/**
 * With `API_KEYS` set, every API route but health requires `Authorization: Bearer <key>`.
 * The decision is on the matched route pattern, never the raw URL, so no encoding of the path gets
 * around it. Keys are compared as SHA-256 digests in constant time.
 */
export function registerApiKeyAuth(app: FastifyInstance, keys: readonly string[]): void {
  app.decorateRequest('owner', null);
  if (keys.length === 0) return;
  const digests = keys.map(digest);
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (!isApiRoute(route) || PUBLIC_API_ROUTES.has(route)) return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const presented = match ? digest(match[1]!) : undefined;
    // Compare against every key, whatever matches, so the time taken says nothing about which one.
    let valid = false;
    for (const candidate of digests) valid = (presented !== undefined && timingSafeEqual(candidate, presented)) || valid;
    // Conversations belong to the key that created them; the key itself is never stored, only a digest.
    if (valid) request.owner = presented!.subarray(0, 16).toString('hex');
    else {
      throw new RequestError('UNAUTHORIZED', 'This server needs an API key: send the header Authorization: Bearer <key>.', {
        headers: { 'www-authenticate': 'Bearer' },
      });
    }
  });
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Whose conversations this request sees: a digest of its API key, or null when keys are off. */
    owner: string | null;
  }
}
