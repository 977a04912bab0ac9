import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ChatModel } from '../../model/chat-model.js';
import type { Config } from '../../config.js';
import { clientConfigSchema, type ClientConfig } from '../../protocol/responses.js';

/** Where `npm run build` puts the chat page: dist/web under the project root (two levels above this file in src/ and dist/). */
export const PAGE_DIRECTORY = fileURLToPath(new URL('../../../dist/web/', import.meta.url));

/** The directives of the page's Content Security Policy: no inline script, nothing from other origins. */
export const PAGE_CSP_DIRECTIVES: Readonly<Record<string, string>> = {
  'default-src': "'self'",
  'script-src': "'self'",
  'style-src': "'self' 'unsafe-inline'",
  'img-src': "'self' data:",
  'font-src': "'self'",
  'connect-src': "'self'",
  'object-src': "'none'",
  'base-uri': "'none'",
  'frame-ancestors': "'none'",
  'form-action': "'self'",
};

/** A Content-Security-Policy header value from its directives. */
export function contentSecurityPolicy(directives: Readonly<Record<string, string>>): string {
  return Object.entries(directives)
    .map(([name, sources]) => `${name} ${sources}`)
    .join('; ');
}

/** The page's Content Security Policy. */
export const PAGE_CSP = contentSecurityPolicy(PAGE_CSP_DIRECTIVES);

/** Options of the page routes. */
export interface PageRoutesOptions {
  config: Config;
  model: ChatModel;
}

/** `GET /api/v1/config`: what the page needs to know about the server (nothing secret). */
export const pageConfigRoute: FastifyPluginAsyncZod<PageRoutesOptions> = async (app, { config, model }) => {
  app.get(
    '/api/v1/config',
    {
      schema: {
        tags: ['health'],
        summary: 'Settings for clients: the chat modes, whether an API key is needed, and the model',
        response: { 200: clientConfigSchema },
      },
    },
    async (): Promise<ClientConfig> => ({
      default_chat_mode: config.DEFAULT_CHAT_MODE,
      show_mode_selector: config.SHOW_MODE_SELECTOR,
      auth_required: config.API_KEYS.length > 0,
      model: { provider: model.provider, name: model.name, demo: model.demo },
    }),
  );
};

/** Serves the built chat page at `/` and `/c/<context_id>`, with its assets, under a strict CSP. */
export async function registerPage(app: FastifyInstance, directory = PAGE_DIRECTORY): Promise<void> {
  const built = existsSync(`${directory}index.html`);
  if (built) {
    await app.register(fastifyStatic, {
      root: directory,
      prefix: '/',
      index: false,
      wildcard: false,
      serve: true,
      setHeaders: (response, path) => {
        // Hashed assets never change; the HTML must be revalidated so a new build is picked up.
        response.setHeader('cache-control', path.endsWith('.html') ? 'no-cache' : 'public, max-age=31536000, immutable');
        // The page is reachable as /index.html too: it gets the same policy as at / and /c/<id>.
        if (path.endsWith('.html')) response.setHeader('content-security-policy', PAGE_CSP);
      },
    });
  }
  const page = async (_request: unknown, reply: import('fastify').FastifyReply) => {
    if (!built) {
      return reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The chat page is not built. Run `npm run build` (or `npm start`, which builds it) and reload.');
    }
    return reply.header('content-security-policy', PAGE_CSP).header('cache-control', 'no-cache').sendFile('index.html');
  };
  app.get('/', { schema: { hide: true } }, page);
  app.get('/c/:context_id', { schema: { hide: true } }, page);
}
