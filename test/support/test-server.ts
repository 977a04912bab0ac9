import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { createServices, type ServicesOptions } from '../../src/app/create-services.js';
import { buildApp } from '../../src/server/build-app.js';
import type { ConversationStore } from '../../src/store/conversation-store.js';
import { openConversationStore } from '../../src/store/create-store.js';
import { createTestDatabase, hasPostgres } from './postgres.js';
import { hasRedis, testRedisUrl } from './redis.js';

/** A ChatWait app listening on a free loopback port. */
export interface TestServer {
  url: string;
  app: FastifyInstance;
  config: Config;
  store: ConversationStore;
  /** Destroys every open streaming connection from the server side, as a proxy restart or a network cut would. */
  dropStreams(): number;
  close(): Promise<void>;
}

/** Environment every test server starts from: quiet, in memory, a fast demo model. */
export const TEST_ENV: Record<string, string> = {
  LOG_LEVEL: 'silent',
  DATABASE_URL: 'memory',
  DEMO_TOKENS_PER_SECOND: '0',
  UPSTREAM_RETRY_DELAY_MS: '10',
  // Limits have their own tests; elsewhere they would only make tests depend on their own pace.
  RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
  MAX_STREAMS_PER_CLIENT: '0',
  MAX_GENERATING_TURNS_PER_CLIENT: '0',
};

/** Builds and starts ChatWait with the test environment plus `env`, on 127.0.0.1 and a free port; `options` swaps in fakes. */
export async function startTestServer(env: Record<string, string> = {}, options: ServicesOptions = {}): Promise<TestServer> {
  // The postgres project runs the API's suites again on PostgreSQL (a new database for each server), unless a test names its store.
  const onPostgres = process.env.CHATWAIT_TEST_STORE === 'postgres' && env.DATABASE_URL === undefined && hasPostgres();
  // The redis project runs some of them again with the replay log in Redis, unless a test brings its own log.
  const onRedis = process.env.CHATWAIT_TEST_REPLAY_LOG === 'redis' && env.REDIS_URL === undefined && !options.replayLog && hasRedis();
  const config = loadConfig(
    {
      ...TEST_ENV,
      ...env,
      ...(onPostgres ? { DATABASE_URL: await createTestDatabase('api') } : {}),
      ...(onRedis ? { REDIS_URL: testRedisUrl() } : {}),
    },
    undefined,
  );
  const store = options.store ?? (await openConversationStore(config.DATABASE_URL));
  const services = await createServices(config, { ...options, store });
  const app = await buildApp({ config, services });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const streaming = new Set<import('node:net').Socket>();
  app.server.on('request', (request: import('node:http').IncomingMessage) => {
    if (!request.url?.startsWith('/api/v1/chat/streaming') || streaming.has(request.socket)) return;
    streaming.add(request.socket);
    request.socket.once('close', () => streaming.delete(request.socket));
  });
  const dropStreams = () => {
    const count = streaming.size;
    for (const socket of streaming) socket.destroy();
    streaming.clear();
    return count;
  };
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, app, config, store, dropStreams, close: () => app.close() };
}

/** POSTs JSON and returns the status, headers and parsed body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const json: any = text ? JSON.parse(text) : undefined;
  return { status: response.status, headers: response.headers, body: json };
}

/** GETs a URL and returns the status, headers and parsed JSON body. */
export async function getJson(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  const text = await response.text();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const json: any = text ? JSON.parse(text) : undefined;
  return { status: response.status, headers: response.headers, body: json };
}
