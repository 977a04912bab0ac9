import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { streamEventSchema } from '../../protocol/events.js';
import { contentSecurityPolicy, PAGE_CSP_DIRECTIVES } from './page.js';

const REDOC_PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>ChatWait API — ReDoc</title>
    <style>body { margin: 0; padding: 0; }</style>
  </head>
  <body>
    <redoc spec-url="/openapi.json"></redoc>
    <script src="/redoc/redoc.standalone.js"></script>
  </body>
</html>
`;

/**
 * The Content Security Policy of Swagger UI (`/docs`) and ReDoc (`/redoc`): their scripts are local
 * files, never inline; they style themselves inline (styled-components, React style props), ReDoc
 * runs its search in a worker built from a blob: URL, and both fetch only /openapi.json (and "Try it
 * out" only this server).
 */
export const DOCS_CSP = contentSecurityPolicy({
  ...PAGE_CSP_DIRECTIVES,
  'worker-src': "'self' blob:",
  'font-src': "'self' data:",
});

/** Registers the OpenAPI document (built from the route schemas) before any route is added. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ChatWait API',
        version,
        description:
          'Real-time streaming AI chat: the whole answer at once (`/api/v1/chat/wait`) or token by token over Server-Sent Events (`/api/v1/chat/streaming`). Errors are `{"error_code", "message", "request_id", "retryable", "detail"?}`; `retryable` says whether the same request, sent again, may succeed. The stream\'s events are the `StreamEvent` schema.',
      },
      tags: [
        { name: 'chat', description: 'Send messages, get answers, resume and cancel' },
        { name: 'conversations', description: 'Stored conversations and their turns' },
        { name: 'health', description: 'Health, liveness and readiness' },
        { name: 'openai', description: "OpenAI's chat-completions API on the same turns, keys and limits; errors in OpenAI's format" },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => withStreamEvents(jsonSchemaTransformObject(document)),
  });
}

type OpenApiDocument = ReturnType<typeof jsonSchemaTransformObject>;
type Components = { schemas?: Record<string, unknown> };

/**
 * The document with the stream's events as named schemas, their union marked by its discriminator,
 * `type`. The component list the schema library builds also holds an input copy of each named
 * schema (`…Input`); those no request refers to (the events') go.
 */
function withStreamEvents(document: OpenApiDocument): OpenApiDocument {
  // The document is OpenAPI 3.1 (registerOpenApi), whose type has components.
  const components = (document as { components?: Components }).components;
  const schemas: Record<string, unknown> = { ...components?.schemas };
  const paths = JSON.stringify(document.paths ?? {});
  for (const name of Object.keys(schemas)) {
    if (name.endsWith('Input') && !paths.includes(`"#/components/schemas/${name}"`)) delete schemas[name];
  }
  const union = schemas[idOf(streamEventSchema)];
  if (union && typeof union === 'object') {
    const mapping = Object.fromEntries(
      streamEventSchema.options.map((event) => [event.shape.type.value, `#/components/schemas/${idOf(event)}`]),
    );
    schemas[idOf(streamEventSchema)] = { ...union, discriminator: { propertyName: 'type', mapping } };
  }
  return { ...document, components: { ...components, schemas } } as OpenApiDocument;
}

function idOf(schema: z.ZodType): string {
  const id = z.globalRegistry.get(schema)?.id;
  if (typeof id !== 'string') throw new Error('a stream event schema has no id');
  return id;
}

/** Serves `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`, all from local files (no CDN). */
export async function registerDocsRoutes(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: DOCS_CSP });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/redoc', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', DOCS_CSP).send(REDOC_PAGE),
  );
  let redocScript: Promise<Buffer> | undefined;
  app.get('/redoc/redoc.standalone.js', { schema: { hide: true } }, async (_request, reply) => {
    redocScript ??= readRedocBundle();
    return reply
      .type('application/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=86400')
      .send(await redocScript);
  });
}

/**
 * ReDoc's bundle: the copy `npm run build` puts in dist/ (a built tree installed with `--omit=dev` has
 * no ReDoc package), else the package's own (running from source).
 */
async function readRedocBundle(): Promise<Buffer> {
  try {
    return await readFile(new URL('../../redoc.standalone.js', import.meta.url));
  } catch {
    return readFile(createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js'));
  }
}
