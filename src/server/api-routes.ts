/**
 * Whether a matched route pattern is an API route: ChatWait's own under `/api/`, the OpenAI-compatible
 * one under `/v1/`. API keys, rate limits and the origin guard treat both alike.
 */
export function isApiRoute(route: string | undefined): route is string {
  return route !== undefined && (route.startsWith('/api/') || route.startsWith('/v1/'));
}
