import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { RequestError } from '../errors.js';
import { API_RATE_FACTOR, type Limiters, type RateDecision } from '../limits/limiter.js';
import { addressGroup } from './address-group.js';
import { isApiRoute } from './api-routes.js';

/** Routes never limited: health, readiness and the page's settings. Metrics and static files are not under /api. */
const UNLIMITED_ROUTES = new Set(['/api/v1/health', '/api/v1/health/live', '/api/v1/health/ready', '/api/v1/config']);
/**
 * Routes the general API limit leaves alone. The streaming routes (ChatWait's and OpenAI's) cannot know before
 * the body is read whether a request resumes a stream (never limited) or sends a message; a new message is
 * charged by `admitTurn`, and its open streams are capped by `openStream`.
 */
const STREAMING_ROUTES = new Set(['/api/v1/chat/streaming', '/v1/chat/completions']);

/** The per-client limits the chat routes apply. */
export interface ClientLimits {
  /**
   * Admits a request that starts a new turn: throws TOO_MANY_GENERATING_TURNS while the client has
   * MAX_GENERATING_TURNS_PER_CLIENT turns generating, RATE_LIMITED over the model rate. Returns the
   * release of its generating slot, to call when the turn's generation ends.
   */
  admitTurn(request: FastifyRequest): Promise<() => void>;
  /** Counts an open stream; throws RATE_LIMITED past MAX_STREAMS_PER_CLIENT. Returns its release. */
  openStream(request: FastifyRequest): Promise<() => void>;
}

/** Who a client is: its API key (a digest of it) when keys are on, else its address, IPv6 by /64 (TRUST_PROXY decides which address). */
export function clientOf(request: FastifyRequest): string {
  return request.owner ?? `ip:${addressGroup(request.ip)}`;
}

/** Installs the general API rate limit and returns the turn and stream limits for the chat routes, on `limiters` (memory or Redis). */
export function registerClientLimits(
  app: FastifyInstance,
  config: Config,
  onLimited: (kind: 'turns' | 'api' | 'streams' | 'generating') => void,
  limiters: Limiters,
): ClientLimits {
  const rpm = config.RATE_LIMIT_REQUESTS_PER_MINUTE;
  const burst = config.RATE_LIMIT_BURST;
  const { turns, api, streams, generating } = limiters;
  const maxGenerating = config.MAX_GENERATING_TURNS_PER_CLIENT;

  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url;
    if (rpm === 0 || !isApiRoute(route) || UNLIMITED_ROUTES.has(route) || STREAMING_ROUTES.has(route)) return;
    const decision = await api.consume(clientOf(request));
    reply.headers(rateLimitHeaders(decision, burst * API_RATE_FACTOR));
    if (!decision.allowed) {
      onLimited('api');
      throw tooMany(
        `Too many requests. Try again in ${decision.retryAfterSeconds} s.`,
        rateLimitHeaders(decision, burst * API_RATE_FACTOR),
      );
    }
  });

  return {
    async admitTurn(request) {
      const client = clientOf(request);
      // The slot is taken before the rate check, so concurrent sends cannot all pass the cap.
      const release = await generating.acquire(client);
      if (!release) {
        onLimited('generating');
        throw new RequestError(
          'TOO_MANY_GENERATING_TURNS',
          `You already have ${maxGenerating} answers generating, the most at once. Wait for one to finish (or cancel one), then send again.`,
          { headers: { 'retry-after': '1' }, retryable: true },
        );
      }
      if (rpm === 0) return release;
      let decision: RateDecision;
      try {
        decision = await turns.consume(client);
      } catch (error) {
        release();
        throw error;
      }
      if (!decision.allowed) {
        release();
        onLimited('turns');
        throw tooMany(
          `Too many messages: the limit is ${rpm} a minute (bursts of ${burst}). Try again in ${decision.retryAfterSeconds} s.`,
          rateLimitHeaders(decision, burst),
        );
      }
      return release;
    },
    async openStream(request) {
      const release = await streams.acquire(clientOf(request));
      if (!release) {
        onLimited('streams');
        throw tooMany(`Too many open streams: at most ${config.MAX_STREAMS_PER_CLIENT} at once. Close one and try again.`, {
          'retry-after': '1',
        });
      }
      return release;
    },
  };
}

/** The RateLimit-* headers (IETF draft) and, when refused, Retry-After. */
export function rateLimitHeaders(decision: RateDecision, burst: number): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetSeconds),
    'ratelimit-policy': `${decision.limit};w=60;burst=${burst}`,
  };
  if (!decision.allowed) headers['retry-after'] = String(decision.retryAfterSeconds);
  return headers;
}

function tooMany(message: string, headers: Record<string, string>): RequestError {
  return new RequestError('RATE_LIMITED', message, { headers, retryable: true });
}
