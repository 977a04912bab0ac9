import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const TOKEN_GAP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

/** ChatWait's Prometheus metrics, in a registry of their own (so several apps can live in one process). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'chatwait_' });
  const metric = { registers: [registry] };
  return {
    registry,
    requests: new Counter({
      ...metric,
      name: 'chatwait_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
    }),
    requestDuration: new Histogram({
      ...metric,
      name: 'chatwait_http_request_duration_seconds',
      help: 'HTTP request latency by route and method (streams: until the response ends)',
      labelNames: ['route', 'method'],
      buckets: LATENCY_BUCKETS,
    }),
    timeToFirstToken: new Histogram({
      ...metric,
      name: 'chatwait_time_to_first_token_seconds',
      help: 'Time from a turn starting to its first token',
      buckets: LATENCY_BUCKETS,
    }),
    // Observed once per token: kept out of prom-client's per-call label handling.
    interTokenDelay: new HotHistogram(
      'chatwait_inter_token_delay_seconds',
      'Time between consecutive tokens of a turn',
      TOKEN_GAP_BUCKETS,
      registry,
    ),
    tokens: new HotCounter('chatwait_tokens_total', 'Tokens streamed out', registry),
    turns: new Counter({ ...metric, name: 'chatwait_turns_total', help: 'Turns ended, by status', labelNames: ['status'] }),
    openStreams: new Gauge({ ...metric, name: 'chatwait_open_streams', help: 'SSE connections open now' }),
    activeTurns: new Gauge({ ...metric, name: 'chatwait_active_turns', help: 'Turns generating now' }),
    resumes: new Counter({ ...metric, name: 'chatwait_resumes_total', help: 'Streams resumed, by method', labelNames: ['method'] }),
    cancels: new Counter({ ...metric, name: 'chatwait_cancels_total', help: 'Turns cancelled' }),
    rateLimited: new Counter({
      ...metric,
      name: 'chatwait_rate_limited_total',
      help: 'Requests refused by a limit, by kind',
      labelNames: ['kind'],
    }),
    upstreamErrors: new Counter({
      ...metric,
      name: 'chatwait_upstream_errors_total',
      help: 'Model provider failures, by error code',
      labelNames: ['kind'],
    }),
    storeDuration: new Histogram({
      ...metric,
      name: 'chatwait_store_operation_duration_seconds',
      help: 'Conversation store latency by operation',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
    }),
  };
}

/** The metrics of one app. */
export type Metrics = ReturnType<typeof createMetrics>;
