import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import { serializerCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Services } from '../app/create-services.js';
import type { Config } from '../config.js';
import { readPackageVersion } from '../version.js';
import { storeBackendOf } from '../store/create-store.js';
import { registerApiKeyAuth } from './auth.js';
import { registerClientLimits } from './client-limits.js';
import { guardConnections } from './connection-guard.js';
import { registerEarlyAnswers, requestTimeouts } from './slow-requests.js';
import { registerMetrics } from './observability-routes.js';
import { registerOriginGuard } from './origin-guard.js';
import { errorBody, registerErrorHandlers, sendError } from './error-handler.js';
import { RequestError } from '../errors.js';
import { RequestLogController } from './request-logging.js';
import { validatorCompiler } from './validation.js';
import { chatRoutes } from './routes/chat.js';
import { conversationRoutes } from './routes/conversations.js';
import { registerDocsRoutes, registerOpenApi } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';
import { openAIRoutes } from './routes/openai.js';
import { pageConfigRoute, registerPage } from './routes/page.js';

/** A valid incoming X-Request-ID is echoed; anything else is replaced by a new UUID. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Headers on every response (the page adds its Content Security Policy). */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** What the app is built from: the config and the services the composition root created. */
export interface BuildAppOptions {
  config: Config;
  services: Services;
  version?: string;
  /** Where the built chat page is (dist/web by default). */
  pageDirectory?: string;
}

/** How long shutdown waits, after the drain, for the answers under way to write their last bytes. */
const FINAL_WRITES_MS = 1000;

/**
 * Builds the HTTP app on the services, wired explicitly; it does no I/O until it listens. Its lifecycle
 * runs theirs: recovery before it serves, the drain before connections close, their close after.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config, services } = options;
  const { logger, model, store, metrics, pendingOutcomes, turns } = services;
  const version = options.version ?? readPackageVersion();
  let shuttingDown = false;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.MAX_BODY_BYTES,
    trustProxy: fastifyTrustProxy(config.TRUST_PROXY),
    // Path ids may be 128 characters; the default (100) would turn longer ones into 404s.
    routerOptions: { maxParamLength: 256 },
    requestIdHeader: false,
    logController: new RequestLogController(),
    genReqId: (request: IncomingMessage) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    },
    return503OnClosing: false,
    ...requestTimeouts(config.REQUEST_TIMEOUT_SECONDS),
    // After the drain (preClose), connections still open are closed whatever their clients do:
    // a stalled upload must not hold the process past SHUTDOWN_DRAIN_SECONDS.
    forceCloseConnections: true,
    // Errors Fastify raises before routing (a malformed URL, say) get the same JSON format as the rest.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      void sendError(
        request,
        reply,
        new RequestError('BAD_REQUEST', 'The request URL is malformed (check its percent-encoding).', { cause: error }),
      );
    },
    // Requests too broken to reach Fastify (bad HTTP, oversized headers) still get a JSON error.
    clientErrorHandler: (error: NodeJS.ErrnoException, socket) => {
      // A response already under way (a 404 sent before its body arrived) cannot be followed by another one.
      const answered = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
      if (error.code === 'ECONNRESET' || !socket.writable || answered) {
        socket.destroy();
        return;
      }
      const [status, reason, message] =
        error.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'Request Header Fields Too Large', 'The request line or headers are too large (16 KB at most).']
          : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? [408, 'Request Timeout', 'The request took too long to arrive.']
            : [400, 'Bad Request', 'The HTTP request is malformed.'];
      // A request that arrived too slowly may arrive in time when sent again; a malformed one will not.
      const body = JSON.stringify(errorBody(new RequestError('BAD_REQUEST', message, { retryable: status === 408 }), randomUUID()));
      // Closed once written: a client that stalled or spoke nonsense does not keep its socket.
      socket.end(
        `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        () => socket.destroy(),
      );
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // POST bodies are JSON only: text/plain and every other type get 415.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.headers(SECURITY_HEADERS);
  });
  registerErrorHandlers(app);
  // Before CORS, keys, limits and body parsing: another site's request is refused before anything runs.
  registerOriginGuard(app, config);
  registerEarlyAnswers(app, config.TRUST_PROXY, config.MAX_BODY_BYTES);
  if (config.ALLOWED_ORIGINS.length > 0) {
    await app.register(cors, {
      origin: config.ALLOWED_ORIGINS.includes('*') ? '*' : [...config.ALLOWED_ORIGINS],
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      exposedHeaders: ['X-Request-ID', 'Retry-After', 'X-ChatWait-Conversation-Id', 'X-ChatWait-Turn-Id'],
      maxAge: 600,
    });
  }
  registerApiKeyAuth(app, config.API_KEYS);
  const connections = guardConnections(app.server, {
    maxPerClient: config.MAX_CONNECTIONS_PER_CLIENT,
    maxPending: config.MAX_PENDING_CONNECTIONS,
    trustProxy: config.TRUST_PROXY,
  });
  // A connection proves itself with a valid key (checked above) or, without keys, a whole request to a known route.
  const tooManyConnections = () =>
    new RequestError(
      'RATE_LIMITED',
      `Too many connections: at most ${config.MAX_CONNECTIONS_PER_CLIENT} at once. Close some and try again.`,
      {
        headers: { 'retry-after': '1', connection: 'close' },
        retryable: true,
      },
    );
  if (config.API_KEYS.length > 0) {
    app.addHook('onRequest', async (request, reply) => {
      if (request.owner !== null) {
        if (!connections.prove(request.raw.socket, request.owner)) throw tooManyConnections();
      } else if (request.routeOptions.url?.startsWith('/api/v1/health')) {
        // A probe has no key: while it is answered, a flood of unproven connections cannot close its connection.
        const release = connections.hold(request.raw.socket);
        reply.raw.once('close', release);
      }
    });
  } else {
    app.addHook('preHandler', async (request) => {
      if (!request.is404 && !connections.prove(request.raw.socket)) throw tooManyConnections();
    });
  }
  const limits = registerClientLimits(app, config, (kind) => metrics.rateLimited.inc({ kind }), services.limiters);
  await registerOpenApi(app, version);
  const streamObserver = registerMetrics(app, metrics);
  const sseOptions = {
    heartbeatMs: config.SSE_HEARTBEAT_SECONDS * 1000,
    maxBufferedBytes: config.SSE_MAX_BUFFER_BYTES,
    drainTimeoutMs: config.SSE_STALL_TIMEOUT_SECONDS * 1000,
  };

  await app.register(healthRoutes, {
    model,
    store,
    storeBackend: storeBackendOf(config.DATABASE_URL),
    replayLog: services.replayLog,
    limiters: services.limiters,
    pendingOutcomes,
    version,
    environment: config.ENVIRONMENT,
    isShuttingDown: () => shuttingDown,
  });
  await app.register(chatRoutes, {
    turns,
    limits,
    observer: streamObserver,
    sse: sseOptions,
  });
  await app.register(conversationRoutes, { store, turns });
  await app.register(openAIRoutes, { prefix: '/v1', turns, store, limits, observer: streamObserver, sse: sseOptions });
  await registerDocsRoutes(app);
  await app.register(pageConfigRoute, { config, model });
  await registerPage(app, options.pageDirectory);

  // listen() waits for onReady: turns a previous process left are settled before the first request.
  app.addHook('onReady', async () => services.recover());
  // Requests whose handler has started, streams included: after the drain, their last writes (the
  // final SHUTTING_DOWN event, a wait-mode 503) go out before the remaining connections are closed.
  let answering = 0;
  let allAnswered: (() => void) | undefined;
  app.addHook('preHandler', async (_request, reply) => {
    answering++;
    reply.raw.once('close', () => {
      answering--;
      if (answering === 0) allAnswered?.();
    });
  });
  app.addHook('preClose', async () => {
    shuttingDown = true;
    await services.drain();
    // Fastify closes every connection as soon as this hook resolves (forceCloseConnections): wait
    // for the answers under way to be written, for at most FINAL_WRITES_MS (a reader that stopped reading).
    if (answering > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        allAnswered = resolve;
        timer = setTimeout(resolve, FINAL_WRITES_MS);
      });
      clearTimeout(timer);
    }
  });
  app.addHook('onClose', async () => services.close());
  return app;
}

/**
 * TRUST_PROXY as Fastify takes it. Fastify 5.12 ignores a bare hop count (it trusts nothing then), so a hop
 * count is given as the function it stands for: the direct peer and the `hops - 1` entries before it in
 * X-Forwarded-For are proxies, and the client is the entry before those (as Express reads a hop count).
 */
export function fastifyTrustProxy(
  trustProxy: boolean | number | string[],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trustProxy !== 'number') return trustProxy;
  const hops = trustProxy;
  return (_address, hop) => hop < hops;
}
