import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ChatModel } from '../../model/chat-model.js';
import type { PendingOutcomes } from '../../turns/pending-outcomes.js';
import type { ConversationStore } from '../../store/conversation-store.js';
import {
  healthResponseSchema,
  livenessResponseSchema,
  notReadyResponseSchema,
  readyResponseSchema,
  type HealthCheck,
} from '../../protocol/responses.js';
import { ChatWaitError } from '../../errors.js';

/** Options of the health routes. */
export interface HealthRoutesOptions {
  model: ChatModel;
  store: ConversationStore;
  /** Turn outcomes the store refused: each check offers them again, and the store fails the check while any is left. */
  pendingOutcomes?: PendingOutcomes | undefined;
  version: string;
  environment: string;
  /** Which store `DATABASE_URL` names (`memory`, `sqlite`, `postgres`). */
  storeBackend: string;
  /** The replay log, reported as `stream_log`: where it is kept, and whether that answers. */
  replayLog: Dependency;
  /** The rate limits, reported as `rate_limit`: where they are kept, and whether that answers. */
  limiters: Dependency;
  /** True once shutdown has begun: readiness answers 503 from then on. */
  isShuttingDown: () => boolean;
}

/** A dependency kept in this process or outside it (Redis): where, and a probe that rejects while it does not answer. */
export interface Dependency {
  readonly backend: string;
  ping(): Promise<void>;
}

/** How long the checks, run side by side, may take in all before those still unanswered count as failing. */
// Readiness must answer within 2 s even when a dependency hangs: the checks give up a little before.
const CHECK_TIMEOUT_MS = 1800;

/** `/health`, `/api/v1/health`, `/api/v1/health/live` and `/api/v1/health/ready`. */
export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (app, options) => {
  const { model, store, storeBackend } = options;

  /** The store answers reads and writes of its real tables, and holds every turn outcome it was given. */
  async function checkStore(): Promise<HealthCheck> {
    try {
      await store.ping();
    } catch (error) {
      if (error instanceof ChatWaitError && error.code === 'DEPENDENCY_UNAVAILABLE') {
        return { status: 'error', detail: 'the conversation database (PostgreSQL) cannot be reached' };
      }
      return {
        status: 'error',
        detail: 'the conversation store does not answer reads and writes (a full disk, a read-only or damaged file?)',
      };
    }
    const pending = options.pendingOutcomes;
    if (pending && pending.size > 0 && !(await pending.flush().catch(() => false))) {
      return {
        status: 'error',
        detail: `the conversation store refuses writes: ${pending.size} ended turn(s) wait to be stored`,
        pending_turns: pending.size,
      };
    }
    return { status: 'ok' };
  }

  /** A dependency kept in Redis answers PING (one round trip, failing within a second); one kept in memory always does. */
  async function checkDependency(dependency: Dependency, failing: string): Promise<HealthCheck> {
    try {
      await dependency.ping();
      return { status: 'ok', backend: dependency.backend };
    } catch {
      return { status: 'error', backend: dependency.backend, detail: failing };
    }
  }

  /** Every check at once, under one deadline: a dependency that hangs fails its own check, never the answer's time. */
  async function runChecks(): Promise<{ checks: Record<string, HealthCheck>; modelMisconfigured: boolean }> {
    const deadline = new Deadline(CHECK_TIMEOUT_MS);
    const late = (what: string, backend: string): HealthCheck => ({
      status: 'error',
      backend,
      detail: `${what} did not answer within ${CHECK_TIMEOUT_MS} ms`,
    });
    const { replayLog, limiters } = options;
    try {
      const [storeCheck, streamLogCheck, rateLimitCheck, modelHealth] = await Promise.all([
        deadline.race(
          checkStore().then((check) => ({ ...check, backend: storeBackend })),
          late('the conversation store (a database that hangs?)', storeBackend),
        ),
        deadline.race(
          checkDependency(
            replayLog,
            'Redis (REDIS_URL) does not answer: new messages are refused with 503, answers already generating on this instance go on',
          ),
          late('Redis (REDIS_URL), where the replay logs are kept,', replayLog.backend),
        ),
        deadline.race(
          checkDependency(limiters, 'Redis (REDIS_URL) does not answer: requests that the rate limits apply to are refused with 503'),
          late('Redis (REDIS_URL), where the rate limits are kept,', limiters.backend),
        ),
        deadline.race(model.checkHealth(), {
          status: 'error' as const,
          misconfigured: false,
          detail: `the model provider did not answer within ${CHECK_TIMEOUT_MS} ms`,
        }),
      ]);
      return {
        checks: {
          store: storeCheck,
          stream_log: streamLogCheck,
          rate_limit: rateLimitCheck,
          model: {
            status: modelHealth.status,
            provider: model.provider,
            name: model.name,
            demo: model.demo,
            ...(modelHealth.detail ? { detail: modelHealth.detail } : {}),
          },
        },
        modelMisconfigured: modelHealth.misconfigured,
      };
    } finally {
      deadline.clear();
    }
  }

  const health = async () => {
    const { checks } = await runChecks();
    const healthy = Object.values(checks).every((check) => check.status === 'ok');
    return {
      status: healthy ? ('healthy' as const) : ('degraded' as const),
      service: 'chatwait' as const,
      version: options.version,
      environment: options.environment,
      model: { provider: model.provider, name: model.name, demo: model.demo },
      checks,
    };
  };
  const healthSchema = {
    tags: ['health'],
    summary: 'Service health, the model in use and the state of each dependency',
    response: { 200: healthResponseSchema },
  };
  app.get('/health', { schema: healthSchema }, health);
  app.get('/api/v1/health', { schema: healthSchema }, health);

  app.get(
    '/api/v1/health/live',
    { schema: { tags: ['health'], summary: 'Liveness: the process is up', response: { 200: livenessResponseSchema } } },
    async () => ({ status: 'alive' as const }),
  );

  app.get(
    '/api/v1/health/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: 200 when every dependency answers, 503 otherwise or while shutting down',
        response: {
          200: readyResponseSchema,
          503: notReadyResponseSchema,
        },
      },
    },
    async (_request, reply) => {
      if (options.isShuttingDown()) return reply.code(503).send({ status: 'not_ready' as const, reason: 'shutting down' });
      const { checks, modelMisconfigured } = await runChecks();
      // An unreachable provider is an outage to report, not a reason to take this instance out of rotation;
      // a refused key is a configuration error, and so is a store that does not answer.
      const failing = Object.entries(checks).filter(([name, check]) => check.status !== 'ok' && (name !== 'model' || modelMisconfigured));
      if (failing.length > 0) {
        return reply
          .code(503)
          .send({ status: 'not_ready' as const, reason: `${failing.map(([name]) => name).join(', ')} failing`, checks });
      }
      return { status: 'ready' as const };
    },
  );
};

/** One deadline shared by several promises: each raced against it, answered by its fallback once it passes. */
class Deadline {
  readonly #passed: Promise<void>;
  #timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.#passed = new Promise((resolve) => {
      this.#timer = setTimeout(resolve, ms);
    });
  }

  /** `promise`'s value, or `fallback` if the deadline passes first. */
  race<T>(promise: Promise<T>, fallback: T): Promise<T> {
    return Promise.race([promise, this.#passed.then(() => fallback)]);
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}
