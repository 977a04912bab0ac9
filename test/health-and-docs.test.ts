import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryConversationStore } from '../src/store/memory-store.js';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.close());

describe('health routes', () => {
  it('report the service, version, environment, the demo model and each check', async () => {
    for (const path of ['/health', '/api/v1/health']) {
      const { status, body } = await getJson(`${server.url}${path}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({
        status: 'healthy',
        service: 'chatwait',
        version: expect.stringMatching(/^\d+\.\d+\.\d+/),
        environment: 'development',
        model: { provider: 'demo', name: 'chatwait-demo', demo: true },
      });
      expect(body.checks.store).toMatchObject({ status: 'ok', backend: 'memory' });
      expect(body.checks.model).toMatchObject({ status: 'ok', demo: true });
      // Without REDIS_URL the replay logs and the limits are in this process's memory.
      expect(body.checks.stream_log).toEqual({ status: 'ok', backend: 'memory' });
      expect(body.checks.rate_limit).toEqual({ status: 'ok', backend: 'memory' });
    }
  });

  it('answer liveness and readiness', async () => {
    expect((await getJson(`${server.url}/api/v1/health/live`)).body).toEqual({ status: 'alive' });
    expect(await getJson(`${server.url}/api/v1/health/ready`)).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('turn degraded and not ready while the store fails', async () => {
    class BrokenStore extends MemoryConversationStore {
      override async ping(): Promise<void> {
        throw new Error('database is gone');
      }
    }
    const broken = await startTestServer({}, { store: new BrokenStore() });
    try {
      const health = await getJson(`${broken.url}/health`);
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('degraded');
      expect(health.body.checks.store.status).toBe('error');
      expect(JSON.stringify(health.body)).not.toContain('database is gone');
      const ready = await getJson(`${broken.url}/api/v1/health/ready`);
      expect(ready.status).toBe(503);
      expect(ready.body.status).toBe('not_ready');
    } finally {
      await broken.close();
    }
  });
});

describe('the model provider check', () => {
  it('probes the provider for real: a refused key makes health degraded and readiness 503; an outage only degrades health', async () => {
    const fake = await startFakeOpenAI();
    fake.modelsStatus = 401;
    const refused = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, OPENAI_API_KEY: 'sk-wrong' });
    try {
      const health = await getJson(`${refused.url}/health`);
      expect(health.body.status).toBe('degraded');
      expect(health.body.checks.model).toMatchObject({ status: 'error', detail: 'the model provider rejects the API key' });
      expect(JSON.stringify(health.body)).not.toContain('sk-wrong');
      expect((await getJson(`${refused.url}/api/v1/health/ready`)).status).toBe(503);
    } finally {
      await refused.close();
    }
    fake.modelsStatus = 200;
    const fine = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl });
    try {
      expect((await getJson(`${fine.url}/health`)).body.checks.model.status).toBe('ok');
    } finally {
      await fine.close();
    }
    await fake.close();
    const down = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl });
    try {
      const health = await getJson(`${down.url}/health`);
      expect(health.body.checks.model).toMatchObject({ status: 'error', detail: 'the model provider does not answer' });
      expect((await getJson(`${down.url}/api/v1/health/ready`)).status).toBe(200);
    } finally {
      await down.close();
    }
  });
  it('answers within 2 s when the provider hangs: the model check fails as unanswered, readiness stays 200 (an outage, not a wrong key)', async () => {
    // Accepts connections and never answers, as a provider behind a black-holed network.
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const hung = await startTestServer({ OPENAI_BASE_URL: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/v1` });
    try {
      const started = performance.now();
      const [health, ready] = await Promise.all([getJson(`${hung.url}/health`), getJson(`${hung.url}/api/v1/health/ready`)]);
      // The provider's own probe waits 3 s; the checks' one deadline (1.8 s) answers first. The margin is for this shared machine.
      expect(performance.now() - started).toBeLessThan(2500);
      expect(health.body.checks.model).toMatchObject({ status: 'error', detail: expect.stringContaining('did not answer') });
      expect(health.body.checks.store).toMatchObject({ status: 'ok' });
      expect(ready.status).toBe(200);
    } finally {
      await hung.close();
      silent.close();
    }
  });
});

describe('API docs', () => {
  it('serve an OpenAPI document generated from the request schemas', async () => {
    const { status, body } = await getJson(`${server.url}/openapi.json`);
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining(['/health', '/api/v1/health/ready', '/api/v1/chat/wait', '/api/v1/chat/streaming']),
    );
    const waitBody = body.paths['/api/v1/chat/wait'].post.requestBody.content['application/json'].schema;
    expect(waitBody.required).toEqual(['message']);
    expect(waitBody.properties.message).toMatchObject({ type: 'string', minLength: 1, maxLength: 10000 });
    const streamingParameters = body.paths['/api/v1/chat/streaming'].get.parameters.map((parameter: { name: string }) => parameter.name);
    expect(streamingParameters).toEqual(expect.arrayContaining(['message', 'context_id', 'last_token_index']));
    expect(body.paths['/api/v1/chat/streaming'].get.responses['200'].content).toHaveProperty(['text/event-stream']);
    // Every code a chat route can answer is documented.
    const waitResponses = body.paths['/api/v1/chat/wait'].post.responses;
    expect(waitResponses['403'].description).toMatch(/ORIGIN_NOT_ALLOWED.*HOST_NOT_ALLOWED/);
    expect(waitResponses['503'].description).toContain('STORE_UNAVAILABLE');
  });

  it("describe the stream's events: the streaming routes answer one union of them, keyed by type", async () => {
    const { body } = await getJson(`${server.url}/openapi.json`);
    const schemas = body.components.schemas;
    for (const method of ['get', 'post']) {
      const ok = body.paths['/api/v1/chat/streaming'][method].responses['200'];
      expect(Object.keys(ok.content)).toEqual(['text/event-stream']);
      expect(ok.content['text/event-stream'].schema).toEqual({ $ref: '#/components/schemas/StreamEvent' });
    }
    const events = {
      start: 'StartEvent',
      token: 'TokenEvent',
      tool_call: 'ToolCallEvent',
      tool_result: 'ToolResultEvent',
      end: 'EndEvent',
      error: 'ErrorEvent',
      resync: 'ResyncEvent',
    };
    const refs = Object.fromEntries(Object.entries(events).map(([type, name]) => [type, `#/components/schemas/${name}`]));
    expect(schemas.StreamEvent.oneOf).toEqual(Object.values(refs).map(($ref) => ({ $ref })));
    expect(schemas.StreamEvent.discriminator).toEqual({ propertyName: 'type', mapping: refs });
    for (const [type, name] of Object.entries(events)) {
      const event = schemas[name];
      expect(event.properties.type, name).toMatchObject({ const: type });
      expect(event.properties.event_type, name).toMatchObject({ const: type });
      expect(event.required, name).toEqual(expect.arrayContaining(['type', 'event_type']));
      expect(event.description, name).toEqual(expect.any(String));
    }
    expect(schemas.TokenEvent.required).toEqual(['token', 'token_index', 'context_id', 'event_type', 'type']);
    expect(schemas.EndEvent.properties.finish_reason.enum).toEqual(['stop', 'cancelled', 'interrupted', 'error']);
    expect(schemas.EndEvent.properties.usage.anyOf).toContainEqual({ type: 'null' });
    expect(schemas.ErrorEvent.properties.retryable).toMatchObject({ type: 'boolean' });
    // Only the events are named schemas: no input copies of them.
    expect(Object.keys(schemas).sort()).toEqual([...Object.values(events), 'StreamEvent'].sort());
  });

  it('document retryable on every error answer', async () => {
    const { body } = await getJson(`${server.url}/openapi.json`);
    const waitResponses = body.paths['/api/v1/chat/wait'].post.responses;
    for (const status of ['400', '404', '409', '422', '429', '502', '503', '504']) {
      const schema = waitResponses[status].content['application/json'].schema;
      expect(schema.required, status).toEqual(['error_code', 'message', 'request_id', 'retryable']);
      expect(schema.properties.retryable, status).toMatchObject({ type: 'boolean' });
    }
  });

  it('serve Swagger UI at /docs and ReDoc at /redoc from local files', async () => {
    const swagger = await fetch(`${server.url}/docs/`);
    expect(swagger.status).toBe(200);
    expect(await swagger.text()).toContain('swagger');
    const redoc = await fetch(`${server.url}/redoc`);
    const page = await redoc.text();
    expect(page).toContain('spec-url="/openapi.json"');
    expect(page).not.toMatch(/https?:\/\/(cdn|unpkg|fonts)/);
    const script = await fetch(`${server.url}/redoc/redoc.standalone.js`);
    expect(script.status).toBe(200);
    expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });
});
