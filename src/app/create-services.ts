import type { Config } from '../config.js';
import { UpstreamError } from '../errors.js';
import type { ChatModel } from '../model/chat-model.js';
import { createChatModel } from '../model/create-model.js';
import type { ChatTool } from '../model/tools/chat-tool.js';
import { createToolSet } from '../model/tools/tool-set.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { openConversationStore } from '../store/create-store.js';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import type { ReplayLog } from '../streams/replay-log.js';
import { localTurnControl, type TurnControl } from '../streams/turn-control.js';
import type { ReapStep } from '../store/postgres-instances.js';
import { sealStepFor } from './seal-abandoned-turns.js';
import { limitsOptionsOf, type Limiters } from '../limits/limiter.js';
import { createMemoryLimiters } from '../limits/memory-limiters.js';
import { PendingOutcomes } from '../turns/pending-outcomes.js';
import { TurnManager } from '../turns/turn-manager.js';
import { timedStore, turnObserverFor, watchReplayLogBytes } from './instrumentation.js';

/** What the services are built from besides the config; each has a default, so tests can swap in fakes. */
export interface ServicesOptions {
  model?: ChatModel;
  store?: ConversationStore;
  replayLog?: ReplayLog;
  limiters?: Limiters;
  logger?: ReturnType<typeof createLogger>;
  metrics?: Metrics;
  /** The tools the model may call, instead of those `TOOLS` and `TOOLS_DIR` choose (unused with `model`). */
  tools?: ReadonlyMap<string, ChatTool>;
}

/** Everything below HTTP, wired together, with the steps of its life: recover before serving, drain, close. */
export interface Services {
  logger: ReturnType<typeof createLogger>;
  model: ChatModel;
  /** The store, timed into the metrics. */
  store: ConversationStore;
  replayLog: ReplayLog;
  /** The per-client limits: in Redis with `REDIS_URL` (shared by every instance), else in this process's memory. */
  limiters: Limiters;
  metrics: Metrics;
  pendingOutcomes: PendingOutcomes;
  turns: TurnManager;
  /** Marks the turns a previous process left generating as interrupted; run once before serving. */
  recover(): Promise<void>;
  /** Refuses new turns, lets running ones finish for SHUTDOWN_DRAIN_SECONDS, then ends the rest with a retryable SHUTTING_DOWN. */
  drain(): Promise<void>;
  /** Offers the store what it refused once more, then closes the replay log and the store; run after the last response. */
  close(): Promise<void>;
}

/** The composition root: creates the model (with its tools), store, replay log, metrics and turns from the config. */
export async function createServices(config: Config, options: ServicesOptions = {}): Promise<Services> {
  const logger = options.logger ?? createLogger(config);
  const tools = options.model ? undefined : (options.tools ?? (await createToolSet(config)));
  const model = options.model ?? createChatModel(config, tools, logger);
  if (tools && tools.size > 0) logger.info({ tools: [...tools.keys()] }, 'tools the model may call');
  const metrics = options.metrics ?? createMetrics();
  // The reaper's step needs the replay log, opened after the store: bound once it is.
  const bound: { sealStep?: ReapStep } = {};
  const store = timedStore(
    options.store ??
      (await openConversationStore(config.DATABASE_URL, {
        instanceTimeoutMs: config.INSTANCE_TIMEOUT_SECONDS * 1000,
        onIdleError: (error) => logger.warn({ err: error }, 'a database connection failed while idle; the pool opens another'),
        onInstanceError: (error) => logger.warn({ err: error }, "could not write this instance's heartbeat to the database"),
        onReaped: (turns) => logger.warn({ turns }, 'marked turns of instances that stopped answering as interrupted'),
        onReaping: (turns, status) => bound.sealStep?.(turns, status) ?? Promise.resolve({ logged: new Map(), unsealed: new Set() }),
        onFenced: (turnId) =>
          logger.warn(
            { turn_id: turnId },
            'this turn can no longer be written here: another instance took it as interrupted (this one was silent too long), or its conversation was deleted; it is stopped here and nothing more of it is stored',
          ),
      })),
    metrics,
  );
  let replayLog: ReplayLog | undefined;
  let control: TurnControl = localTurnControl;
  let limiters: Limiters;
  try {
    if (options.replayLog) replayLog = options.replayLog;
    else ({ log: replayLog, control } = await openReplayLog(config, logger, metrics));
    limiters = options.limiters ?? (await openLimiters(config, logger));
  } catch (error) {
    await replayLog?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
  bound.sealStep = sealStepFor(control, logger);
  if (replayLog instanceof MemoryReplayLog) watchReplayLogBytes(metrics, () => replayLog.bytes);
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
    control,
  });

  return {
    logger,
    model,
    store,
    replayLog,
    limiters,
    metrics,
    pendingOutcomes,
    turns,
    async recover() {
      // Turns a dead process left generating can never finish: say so, rather than leave them spinning.
      const interrupted = await store.markInterrupted();
      if (interrupted > 0) logger.warn({ turns: interrupted }, 'marked turns left generating by a previous process as interrupted');
    },
    drain: () =>
      turns.drain(
        new UpstreamError('SHUTTING_DOWN', 'The server is restarting. Please send your message again in a moment.', { retryable: true }),
        config.SHUTDOWN_DRAIN_SECONDS * 1000,
        new UpstreamError('SHUTTING_DOWN', 'The server restarted before this answer finished. Send the message again to continue.', {
          retryable: true,
        }),
      ),
    async close() {
      // One last try for outcomes the store refused; what is still left is marked interrupted at the next start.
      pendingOutcomes.close();
      if (!(await pendingOutcomes.flush())) logger.error({ turns: pendingOutcomes.size }, 'could not store the outcome of some turns');
      await replayLog.close();
      await limiters.close();
      await store.close();
    },
  };
}

/** The limits the config asks for: shared by every instance in Redis with `REDIS_URL`, else in this process's memory. */
async function openLimiters(config: Config, logger: ReturnType<typeof createLogger>): Promise<Limiters> {
  const options = limitsOptionsOf(config);
  if (!config.REDIS_URL) return createMemoryLimiters(options);
  // Loaded only when used, as the Redis replay log is.
  const { RedisLimiters } = await import('../limits/redis-limiters.js');
  return RedisLimiters.connect({
    ...options,
    url: config.REDIS_URL,
    leaseMs: config.REDIS_LEASE_SECONDS * 1000,
    onConnectionError: (error) => logger.warn({ err: error }, 'the Redis connection of the rate limits failed; reconnecting'),
  });
}

/** The replay log the config asks for, with how cancels reach other instances: in Redis with `REDIS_URL`, else in this process's memory. */
async function openReplayLog(
  config: Config,
  logger: ReturnType<typeof createLogger>,
  metrics: Metrics,
): Promise<{ log: ReplayLog; control: TurnControl }> {
  if (!config.REDIS_URL) return { log: new MemoryReplayLog({ maxBytes: config.REPLAY_LOG_MAX_BYTES }), control: localTurnControl };
  // Loaded only when used: a process without Redis does not pay for the client at start-up.
  const { RedisReplayLog } = await import('../streams/redis-replay-log.js');
  const log = await RedisReplayLog.connect({
    url: config.REDIS_URL,
    writeWindowMs: config.REDIS_WRITE_WINDOW_MS,
    // A generating turn's log outlives a silent model by twice its timeout; every flush, and a timer, renews it.
    runningTtlMs: (config.STREAM_TTL_SECONDS + 2 * config.RESPONSE_TIMEOUT_SECONDS) * 1000,
    maxBytes: config.REPLAY_LOG_MAX_BYTES,
    onConnectionError: (error) => logger.warn({ err: error }, 'the Redis connection failed; reconnecting'),
    onWriteStopped: (turnId, reason) =>
      logger.warn({ turn_id: turnId, reason }, 'stopped writing this turn to Redis; readers on this instance are not affected'),
  });
  watchReplayLogBytes(metrics, () => log.local.bytes);
  // Cancels and seals across instances ride on the log's connections; closed with the log.
  return { log, control: log.control({ sealedTtlMs: config.STREAM_TTL_SECONDS * 1000 }) };
}
