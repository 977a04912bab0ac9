import OpenAI from 'openai';
import { afterAll, beforeAll } from 'vitest';
import { startFakeOpenAI, type FakeOpenAIServer } from './fake-openai-server.js';
import { startTestServer, type TestServer } from './test-server.js';

/** What a suite of the OpenAI-compatible API in front of the fake provider works with. */
export interface OpenAIFixture {
  fake: FakeOpenAIServer;
  server: TestServer;
  /** The `openai` SDK pointed at the server's `/v1`, without retries. */
  client: OpenAI;
}

/**
 * Starts, before the suite, the fake provider and a server in front of it (model `fake-model`, a
 * configured system prompt, no tools), and stops both after it. Read the fields inside the tests.
 */
export function openAIInFrontOfFake(): OpenAIFixture {
  const fixture = {} as OpenAIFixture;
  beforeAll(async () => {
    fixture.fake = await startFakeOpenAI();
    fixture.server = await startTestServer({
      OPENAI_BASE_URL: fixture.fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      SYSTEM_PROMPT: 'Configured prompt.',
      TOOLS: 'none',
    });
    fixture.client = new OpenAI({ apiKey: 'unused', baseURL: `${fixture.server.url}/v1`, maxRetries: 0 });
  });
  afterAll(async () => {
    await fixture.server?.close();
    await fixture.fake?.close();
  });
  return fixture;
}
