import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { RequestError } from '../errors.js';
import { isApiRoute } from './api-routes.js';

/** Host names that always mean this machine (RFC 6761: browsers resolve `*.localhost` to loopback themselves). */
const LOOPBACK_NAME = /^(localhost|[a-z0-9.-]+\.localhost|127(\.\d{1,3}){3}|\[::1\])$/;
/** HOST values that bind a loopback address only. */
const LOOPBACK_BINDING = /^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$/i;

/** What the guard needs from the configuration. */
export type OriginGuardOptions = Pick<Config, 'HOST' | 'ALLOWED_ORIGINS' | 'ALLOWED_HOSTS' | 'TRUST_PROXY'>;

/**
 * Refuses, before anything else runs, what browsers on other sites send: a request whose `Origin` is
 * neither the page's own nor in ALLOWED_ORIGINS (CORS alone would not stop an EventSource GET or a
 * no-cors fetch, which need no preflight yet start a turn), and, on a loopback-only server, a `Host`
 * that is not a loopback name unless ALLOWED_HOSTS names it (DNS rebinding).
 */
export function registerOriginGuard(app: FastifyInstance, options: OriginGuardOptions): void {
  const anyOrigin = options.ALLOWED_ORIGINS.includes('*');
  const allowedOrigins = new Set(options.ALLOWED_ORIGINS);
  const anyHost =
    options.ALLOWED_HOSTS.includes('*') || (options.ALLOWED_HOSTS.length === 0 && !LOOPBACK_BINDING.test(options.HOST.trim()));
  const allowedHosts = options.ALLOWED_HOSTS;
  // Without a trusted proxy the scheme it terminated is unknown: an https page may reach us over http.
  const schemeKnown = options.TRUST_PROXY !== false;

  app.addHook('onRequest', async (request) => {
    if (!anyHost) {
      const name = hostNameOf(request.headers.host);
      if (name !== undefined && !LOOPBACK_NAME.test(name) && !allowedHosts.some((allowed) => hostMatches(allowed, name))) {
        throw new RequestError(
          'HOST_NOT_ALLOWED',
          `This server does not answer to the host name "${shortened(name)}". Use localhost, or add the name to ALLOWED_HOSTS in the server's configuration.`,
        );
      }
    }
    if (anyOrigin) return;
    // The browser itself says the request comes from our own page (or from the user: a typed address, a bookmark).
    const site = request.headers['sec-fetch-site'];
    if (site === 'same-origin' || site === 'none') return;
    const origin = request.headers.origin;
    if (typeof origin === 'string') {
      if (allowedOrigins.has(origin) || isOwnOrigin(origin, request, schemeKnown)) return;
      throw new RequestError(
        'ORIGIN_NOT_ALLOWED',
        `Requests from the web page at ${origin === 'null' ? 'an opaque origin (a sandboxed frame or a local file)' : shortened(origin)} are not allowed. The server's ALLOWED_ORIGINS lists the sites that may use it.`,
      );
    }
    // Another site's request without an Origin: a link followed to one of our pages is fine, anything else (an <img>, a no-cors fetch) is not.
    if ((site === 'cross-site' || site === 'same-site') && !(request.headers['sec-fetch-mode'] === 'navigate' && isPagePath(request))) {
      throw new RequestError(
        'ORIGIN_NOT_ALLOWED',
        "Requests from other web sites are not allowed. The server's ALLOWED_ORIGINS lists the sites that may use it.",
      );
    }
  });
}

/** The lower-case host name of a Host header, without its port; undefined without one. */
function hostNameOf(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  const name = header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.replace(/:\d*$/, '');
  return name.toLowerCase().replace(/\.$/, '');
}

function hostMatches(allowed: string, name: string): boolean {
  return allowed.startsWith('*.') ? name.endsWith(allowed.slice(1)) : name === allowed;
}

/** Whether `origin` is the origin the request was sent to: same host and port, and the same scheme (or https before a proxy we cannot see). */
function isOwnOrigin(origin: string, request: FastifyRequest, schemeKnown: boolean): boolean {
  let page: URL;
  let own: URL;
  try {
    page = new URL(origin);
    own = new URL(`${page.protocol}//${request.host}`);
  } catch {
    return false;
  }
  if (page.origin === 'null' || page.host !== own.host) return false;
  const scheme = `${request.protocol}:`;
  return page.protocol === scheme || (!schemeKnown && scheme === 'http:' && page.protocol === 'https:');
}

/** GET paths of pages a link may lead to (the API is never one, nor a request that changes something). */
function isPagePath(request: FastifyRequest): boolean {
  // The matched route, not the raw URL, so no encoding of the path gets around it.
  return (request.method === 'GET' || request.method === 'HEAD') && !isApiRoute(request.routeOptions.url);
}

/** A client-sent name as quoted back in a message: at most 100 characters. */
function shortened(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}
