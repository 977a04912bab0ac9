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
  // Streams are counted by the hook above when their response ends; what is open now, the chat routes report.
  return {
    streamOpened: () => metrics.openStreams.inc(),
    streamClosed: () => metrics.openStreams.dec(),
    resumed: (method) => metrics.resumes.inc({ method }),
  };
}
