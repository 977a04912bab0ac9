import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import { serializerCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import { createChatModel } from '../model/create-model.js';
import type { ChatModel } from '../model/chat-model.js';
import { PendingOutcomes } from '../turns/pending-outcomes.js';
import { TurnManager } from '../turns/turn-manager.js';
import type { ChatTool } from '../model/tools/chat-tool.js';
import { createToolSet } from '../model/tools/tool-set.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics, timedStore, turnObserverFor, watchReplayLogBytes, type Metrics } from '../observability/metrics.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { openConversationStore } from '../store/create-store.js';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import type { ReplayLog } from '../streams/replay-log.js';
import { readPackageVersion } from '../version.js';
import { registerApiKeyAuth } from './auth.js';
import { registerClientLimits } from './client-limits.js';
import { guardConnections } from './connection-guard.js';
import { registerEarlyAnswers, requestTimeouts } from './slow-requests.js';
import { registerMetrics } from './observability-routes.js';
import { registerOriginGuard } from './origin-guard.js';
import { registerErrorHandlers, sendError } from './error-handler.js';
import { RequestError, UpstreamError } from '../errors.js';
import { RequestLogController } from './request-logging.js';
import { validatorCompiler } from './validation.js';
import { chatRoutes } from './routes/chat.js';
import { conversationRoutes } from './routes/conversations.js';
import { registerDocsRoutes, registerOpenApi } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';
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

/** What the app is built from; everything but the config has a default, so tests can swap in fakes. */
export interface BuildAppOptions {
  config: Config;
  model?: ChatModel;
  store?: ConversationStore;
  replayLog?: ReplayLog;
  logger?: ReturnType<typeof createLogger>;
  version?: string;
  metrics?: Metrics;
  /** Where the built chat page is (dist/web by default). */
  pageDirectory?: string;
  /** The tools the model may call, instead of those `TOOLS` and `TOOLS_DIR` choose. */
  tools?: ReadonlyMap<string, ChatTool>;
}

/** How long shutdown waits, after the drain, for the answers under way to write their last bytes. */
const FINAL_WRITES_MS = 1000;

/** Builds the HTTP app with every dependency wired explicitly; besides loading TOOLS_DIR plugins, it does no I/O until it listens. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config);
  const tools = options.model ? undefined : (options.tools ?? (await createToolSet(config)));
  const model = options.model ?? createChatModel(config, tools, logger);
  if (tools && tools.size > 0) logger.info({ tools: [...tools.keys()] }, 'tools the model may call');
  const metrics = options.metrics ?? createMetrics();
  const store = timedStore(
    options.store ??
      (await openConversationStore(config.DATABASE_URL, {
        instanceTimeoutMs: config.INSTANCE_TIMEOUT_SECONDS * 1000,
        onIdleError: (error) => logger.warn({ err: error }, 'a database connection failed while idle; the pool opens another'),
        onInstanceError: (error) => logger.warn({ err: error }, 'could not write this instance\'s heartbeat to the database'),
        onReaped: (turns) => logger.warn({ turns }, 'marked turns of instances that stopped answering as interrupted'),
        onFenced: (turnId) => logger.warn({ turn_id: turnId }, 'another instance took this turn as interrupted (this one was silent too long); its end was not stored'),
      })),
    metrics,
  );
  const replayLog = options.replayLog ?? new MemoryReplayLog({ maxBytes: config.REPLAY_LOG_MAX_BYTES });
  if (replayLog instanceof MemoryReplayLog) watchReplayLogBytes(metrics, () => replayLog.bytes);
  const version = options.version ?? readPackageVersion();
  let shuttingDown = false;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.MAX_BODY_BYTES,
    // Fastify accepts a hop count at run time; its types only list the other forms.
    trustProxy: config.TRUST_PROXY as boolean | string[],
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
      void sendError(request, reply, new RequestError('BAD_REQUEST', 'The request URL is malformed (check its percent-encoding).', { cause: error }));
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
      const body = JSON.stringify({ error_code: 'BAD_REQUEST', message, request_id: randomUUID() });
      // Closed once written: a client that stalled or spoke nonsense does not keep its socket.
      socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`, () =>
        socket.destroy(),
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
  registerEarlyAnswers(app);
  if (config.ALLOWED_ORIGINS.length > 0) {
    await app.register(cors, {
      origin: config.ALLOWED_ORIGINS.includes('*') ? '*' : [...config.ALLOWED_ORIGINS],
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      exposedHeaders: ['X-Request-ID', 'Retry-After'],
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
    new RequestError('RATE_LIMITED', `Too many connections: at most ${config.MAX_CONNECTIONS_PER_CLIENT} at once. Close some and try again.`, {
      headers: { 'retry-after': '1', connection: 'close' },
      retryable: true,
    });
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
  const limits = registerClientLimits(app, config, (kind) => metrics.rateLimited.inc({ kind }));
  await registerOpenApi(app, version);
  const streamObserver = registerMetrics(app, metrics);

  const pendingOutcomes = new PendingOutcomes(store, logger);
  const turns = new TurnManager({
    model,
    store,
    pendingOutcomes,
    log: replayLog,
    logger,
    history: { maxMessages: config.HISTORY_MAX_MESSAGES, maxChars: config.HISTORY_MAX_CHARS },
    responseTimeoutMs: config.RESPONSE_TIMEOUT_SECONDS * 1000,
    streamTtlMs: config.STREAM_TTL_SECONDS * 1000,
    observer: turnObserverFor(metrics),
  });

  await app.register(healthRoutes, {
    model,
    store,
    pendingOutcomes,
    version,
    environment: config.ENVIRONMENT,
    isShuttingDown: () => shuttingDown,
  });
  await app.register(chatRoutes, {
    turns,
    limits,
    observer: streamObserver,
    sse: {
      heartbeatMs: config.SSE_HEARTBEAT_SECONDS * 1000,
      maxBufferedBytes: config.SSE_MAX_BUFFER_BYTES,
      drainTimeoutMs: config.SSE_STALL_TIMEOUT_SECONDS * 1000,
    },
  });
  await app.register(conversationRoutes, { store, turns });
  await registerDocsRoutes(app);
  await app.register(pageConfigRoute, { config, model });
  await registerPage(app, options.pageDirectory);

  app.addHook('onReady', async () => {
    // Turns a dead process left generating can never finish: say so, rather than leave them spinning.
    const interrupted = await store.markInterrupted();
    if (interrupted > 0) logger.warn({ turns: interrupted }, 'marked turns left generating by a previous process as interrupted');
  });
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
    await turns.drain(
      new UpstreamError('SHUTTING_DOWN', 'The server is restarting. Please send your message again in a moment.', { retryable: true }),
      config.SHUTDOWN_DRAIN_SECONDS * 1000,
      new UpstreamError('SHUTTING_DOWN', 'The server restarted before this answer finished. Send the message again to continue.', { retryable: true }),
    );
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
  app.addHook('onClose', async () => {
    // One last try for outcomes the store refused; what is still left is marked interrupted at the next start.
    pendingOutcomes.close();
    if (!(await pendingOutcomes.flush())) logger.error({ turns: pendingOutcomes.size }, 'could not store the outcome of some turns');
    replayLog.close();
    await store.close();
  });
  return app;
}
