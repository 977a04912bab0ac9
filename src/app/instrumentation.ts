import { Gauge } from 'prom-client';
import type { Metrics } from '../observability/metrics.js';
import type { ConversationStore } from '../store/conversation-store.js';
import type { TurnObserver } from '../turns/turn-generation.js';

/** Reports turns into the metrics. */
export function turnObserverFor(metrics: Metrics): TurnObserver {
  return {
    turnStarted: () => metrics.activeTurns.inc(),
    firstToken: (milliseconds) => metrics.timeToFirstToken.observe(milliseconds / 1000),
    token: (gapMilliseconds) => {
      metrics.tokens.inc();
      if (gapMilliseconds !== undefined) metrics.interTokenDelay.observe(gapMilliseconds / 1000);
    },
    turnEnded: (status, errorCode) => {
      metrics.activeTurns.dec();
      metrics.turns.inc({ status });
      if (status === 'cancelled') metrics.cancels.inc();
      if (errorCode && errorCode !== 'INTERNAL_ERROR' && errorCode !== 'SHUTTING_DOWN') metrics.upstreamErrors.inc({ kind: errorCode });
    },
  };
}

/** Wraps a store so that every operation's latency lands in the metrics. */
export function timedStore(store: ConversationStore, metrics: Metrics): ConversationStore {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      // Methods run on the store itself (its private fields are not visible through the proxy).
      if (property === 'close') return (value as () => unknown).bind(target);
      return (...args: unknown[]) => {
        const end = metrics.storeDuration.startTimer({ operation: String(property) });
        const result = (value as (...parameters: unknown[]) => unknown).apply(target, args);
        return result instanceof Promise ? result.finally(() => end()) : (end(), result);
      };
    },
  });
}

/** Reports what the in-memory replay logs hold, read at each scrape (once per registry). */
export function watchReplayLogBytes(metrics: Metrics, bytes: () => number): void {
  const name = 'chatwait_replay_log_bytes';
  if (metrics.registry.getSingleMetric(name)) return;
  new Gauge({
    name,
    help: 'What the in-memory replay logs hold, in bytes as REPLAY_LOG_MAX_BYTES counts them',
    registers: [metrics.registry],
    collect() {
      this.set(bytes());
    },
  });
}
