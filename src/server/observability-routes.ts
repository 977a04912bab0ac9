import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import type { StreamObserver } from './routes/chat.js';

/** Counts every request into the metrics and serves them at `GET /metrics` (Prometheus text format). */
export function registerMetrics(app: FastifyInstance, metrics: Metrics): StreamObserver {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: reply.statusCode });
    metrics.requestDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics', hide: false } }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
  // Streams are hijacked replies, which Fastify does not report: the chat routes do.
  return {
    streamOpened: () => metrics.openStreams.inc(),
    streamClosed: (method, seconds) => {
      metrics.openStreams.dec();
      metrics.requests.inc({ route: '/api/v1/chat/streaming', method, status: 200 });
      metrics.requestDuration.observe({ route: '/api/v1/chat/streaming', method }, seconds);
    },
    resumed: (method) => metrics.resumes.inc({ method }),
  };
}
