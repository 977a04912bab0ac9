import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateText, streamText } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from './support/test-server.js';

// The AI SDK's OpenAI-compatible provider pointed at ChatWait: a client nobody here wrote.

describe('the AI SDK against the OpenAI-compatible API', () => {
  let server: TestServer;
  let chatwait: ReturnType<typeof createOpenAICompatible>;
  /** Each call's conversation and turn, from the response headers. */
  const seen: { contextId: string | null; turnId: string | null }[] = [];

  beforeAll(async () => {
    server = await startTestServer({ API_KEYS: 'sk-ai-sdk' });
    chatwait = createOpenAICompatible({
      name: 'chatwait',
      baseURL: `${server.url}/v1`,
      apiKey: 'sk-ai-sdk',
      includeUsage: true,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        seen.push({ contextId: response.headers.get('x-chatwait-conversation-id'), turnId: response.headers.get('x-chatwait-turn-id') });
        return response;
      },
    });
  });
  afterAll(() => server.close());

  async function storedAnswer(contextId: string): Promise<{ answer: string; status: string; user_message: string }> {
    const response = await fetch(`${server.url}/api/v1/conversations/${contextId}`, { headers: { authorization: 'Bearer sk-ai-sdk' } });
    const body = (await response.json()) as { turns: { answer: string; status: string; user_message: string }[] };
    return body.turns.at(-1)!;
  }

  it('streams a text with streamText: the deltas, the finish reason and the usage', async () => {
    const result = streamText({ model: chatwait('chatwait-demo'), system: 'Be kind.', prompt: 'Hello from the AI SDK', maxRetries: 0 });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    expect(deltas.length).toBeGreaterThan(1);
    expect(await result.finishReason).toBe('stop');
    const usage = await result.usage;
    expect(usage.outputTokens).toBeGreaterThan(0);
    expect(usage.totalTokens).toBe(usage.inputTokens! + usage.outputTokens!);
    const { contextId } = seen.at(-1)!;
    expect(await storedAnswer(contextId!)).toEqual(
      expect.objectContaining({ answer: deltas.join(''), status: 'complete', user_message: 'Hello from the AI SDK' }),
    );
  });

  it('answers generateText with the stored answer', async () => {
    const result = await generateText({ model: chatwait('chatwait-demo'), prompt: 'Hello again', maxRetries: 0 });
    expect(result.finishReason).toBe('stop');
    expect(result.text.length).toBeGreaterThan(0);
    const { contextId, turnId } = seen.at(-1)!;
    expect(result.response.id).toBe(`chatcmpl-${turnId}`);
    expect((await storedAnswer(contextId!)).answer).toBe(result.text);
  });

  it('reports an unknown model as the API error OpenAI would give', async () => {
    const failure = await generateText({ model: chatwait('gpt-4o'), prompt: 'Hi', maxRetries: 0 }).catch((error: unknown) => error);
    expect(APICallError.isInstance(failure)).toBe(true);
    expect(failure).toMatchObject({ statusCode: 404 });
    expect((failure as Error).message).toContain('does not exist');
  });
});
