import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import cors from '@fastify/cors';
import { serializerCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from '../config.js';
import { createChatModel } from '../chat/agent.js';
import type { ChatModel } from '../chat/chat-model.js';
import { TurnManager } from '../chat/turn-manager.js';
import { createLogger } from '../observability/logger.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { MemoryConversationStore } from '../store/memory-store.js';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import type { ReplayLog } from '../streams/replay-log.js';
import { readPackageVersion } from '../version.js';
import { registerApiKeyAuth } from './auth.js';
import { registerErrorHandlers } from './error-handler.js';
import { RequestLogController } from './request-logging.js';
import { validatorCompiler } from './validation.js';
import { chatRoutes } from './routes/chat.js';
import { registerDocsRoutes, registerOpenApi } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';

/** A valid incoming X-Request-ID is echoed; anything else is replaced by a new UUID. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** What the app is built from; everything but the config has a default, so tests can swap in fakes. */
export interface BuildAppOptions {
  config: Config;
  model?: ChatModel;
  store?: ConversationStore;
  replayLog?: ReplayLog;
  logger?: ReturnType<typeof createLogger>;
  version?: string;
}

/** Builds the HTTP app with every dependency wired explicitly; it does no I/O until it listens. */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config);
  const model = options.model ?? createChatModel(config);
  const store = options.store ?? new MemoryConversationStore();
  const replayLog = options.replayLog ?? new MemoryReplayLog();
  const version = options.version ?? readPackageVersion();
  let shuttingDown = false;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.MAX_BODY_BYTES,
    requestIdHeader: false,
    logController: new RequestLogController(),
    genReqId: (request: IncomingMessage) => {
      const incoming = request.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    },
    return503OnClosing: false,
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // POST bodies are JSON only: text/plain and every other type get 415.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerErrorHandlers(app);
  if (config.ALLOWED_ORIGINS.length > 0) {
    await app.register(cors, {
      origin: config.ALLOWED_ORIGINS.includes('*') ? '*' : [...config.ALLOWED_ORIGINS],
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      exposedHeaders: ['X-Request-ID', 'Retry-After'],
      maxAge: 600,
    });
  }
  registerApiKeyAuth(app, config.API_KEYS);
  await registerOpenApi(app, version);

  const turns = new TurnManager({
    model,
    store,
    log: replayLog,
    logger,
    history: { maxMessages: config.HISTORY_MAX_MESSAGES, maxChars: config.HISTORY_MAX_CHARS },
    responseTimeoutMs: config.RESPONSE_TIMEOUT_SECONDS * 1000,
    streamTtlMs: config.STREAM_TTL_SECONDS * 1000,
  });

  await app.register(healthRoutes, {
    model,
    store,
    version,
    environment: config.ENVIRONMENT,
    isShuttingDown: () => shuttingDown,
  });
  await app.register(chatRoutes, { turns, heartbeatMs: config.SSE_HEARTBEAT_SECONDS * 1000 });
  await registerDocsRoutes(app);
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/docs'));

  app.addHook('preClose', async () => {
    shuttingDown = true;
  });
  app.addHook('onClose', async () => {
    replayLog.close();
    await store.close();
  });
  return app;
}
