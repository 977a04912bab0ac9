import type { ModelRequest } from '@openai/agents-core';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIUserAbortError, InternalServerError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../src/errors.js';
import { OpenAICompatibleModel } from '../src/model/openai-compatible-model.js';
import { toUpstreamError } from '../src/model/upstream-errors.js';
import { normalizeUpstreamFailure, type UpstreamFailure } from '../src/model/upstream-failure.js';
import { startFakeOpenAI, type FakeOpenAIServer, type FakeReply } from './support/fake-openai-server.js';

let fake: FakeOpenAIServer;
beforeAll(async () => {
  fake = await startFakeOpenAI();
});
afterAll(() => fake.close());

const request = (signal?: AbortSignal): ModelRequest => ({
  systemInstructions: 'be brief',
  input: [{ role: 'user', content: 'hello' }],
  modelSettings: {},
  tools: [],
  outputType: 'text',
  handoffs: [],
  tracing: false,
  signal,
});

/** What ChatWait's own streaming model throws for one reply of the fake, normalised. */
async function failureOfModel(reply: FakeReply, signal?: AbortSignal): Promise<{ thrown: unknown; failure: UpstreamFailure }> {
  fake.enqueue(reply);
  const model = new OpenAICompatibleModel({ baseUrl: fake.baseUrl, apiKey: 'test-key', model: 'fake-model' });
  try {
    for await (const event of model.getStreamedResponse(request(signal))) void event;
  } catch (thrown) {
    return { thrown, failure: normalizeUpstreamFailure(thrown, signal) };
  }
  return expect.unreachable('the reply was meant to fail');
}

/** What the official openai client throws for one reply of the fake, normalised. */
async function failureOfClient(
  reply: FakeReply,
  options: { timeout?: number; signal?: AbortSignal } = {},
): Promise<{ thrown: unknown; failure: UpstreamFailure }> {
  fake.enqueue(reply);
  const client = new OpenAI({ apiKey: 'test-key', baseURL: fake.baseUrl, maxRetries: 0 });
  try {
    const stream = await client.chat.completions.create(
      { model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'hello' }] },
      options,
    );
    for await (const chunk of stream) void chunk;
  } catch (thrown) {
    return { thrown, failure: normalizeUpstreamFailure(thrown, options.signal) };
  }
  return expect.unreachable('the reply was meant to fail');
}

const rateLimited: FakeReply = { kind: 'status', status: 429, headers: { 'retry-after': '3' }, message: 'Rate limit reached' };
const serverError: FakeReply = { kind: 'status', status: 500, message: 'the server had an error with secret details' };

describe('upstream failures from a real OpenAI-compatible server, normalised', () => {
  it("reads a 429 with Retry-After the same from ChatWait's model and from the openai client", async () => {
    for (const { thrown, failure } of [await failureOfModel(rateLimited), await failureOfClient(rateLimited)]) {
      expect(thrown).toBeInstanceOf(RateLimitError);
      expect(failure).toMatchObject({ status: 429, retryAfterMs: 3000, providerMessage: 'Rate limit reached', transient: true });
      expect(toUpstreamError(failure)).toMatchObject({ code: 'UPSTREAM_ERROR', retryable: true });
    }
  });

  it('reads a 500 as transient and never shows its body', async () => {
    for (const { thrown, failure } of [await failureOfModel(serverError), await failureOfClient(serverError)]) {
      expect(thrown).toBeInstanceOf(InternalServerError);
      expect(failure).toMatchObject({ status: 500, transient: true });
      expect(toUpstreamError(failure).message).not.toContain('secret');
    }
  });

  it('reads a reset connection as a transient network failure', async () => {
    for (const { thrown, failure } of [await failureOfModel({ kind: 'reset' }), await failureOfClient({ kind: 'reset' })]) {
      expect(thrown).toBeInstanceOf(APIConnectionError);
      expect(failure).toMatchObject({ status: undefined, network: true, aborted: false, transient: true });
      expect(toUpstreamError(failure)).toMatchObject({ code: 'UPSTREAM_ERROR', retryable: true });
    }
  });

  it('reads a stream broken mid-answer as a network failure', async () => {
    const { failure } = await failureOfModel({ kind: 'broken', tokens: ['Half', ' an'] });
    expect(failure).toMatchObject({ network: true, transient: true });
  });

  it("reads a hanging server given up by the turn's timeout as that timeout, before or after the first byte", async () => {
    for (const reply of [{ kind: 'silent' }, { kind: 'hang', tokens: ['Half'] }] satisfies FakeReply[]) {
      const controller = new AbortController();
      const timeout = new UpstreamError('UPSTREAM_TIMEOUT', 'The model did not answer within 1 seconds. Please try again.', {
        retryable: true,
      });
      setTimeout(() => controller.abort(timeout), 100);
      const { failure } = await failureOfModel(reply, controller.signal);
      expect(failure, reply.kind).toMatchObject({ own: timeout, aborted: true, transient: false });
      expect(toUpstreamError(failure)).toBe(timeout);
    }
  });

  it("reads the openai client's own timeout on a silent server as transient, and a user's abort as not", async () => {
    const timedOut = await failureOfClient({ kind: 'silent' }, { timeout: 100 });
    expect(timedOut.thrown).toBeInstanceOf(APIConnectionTimeoutError);
    expect(timedOut.failure).toMatchObject({ network: true, aborted: false, transient: true });

    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const aborted = await failureOfClient({ kind: 'silent' }, { signal: controller.signal });
    expect(aborted.thrown).toBeInstanceOf(APIUserAbortError);
    expect(aborted.failure).toMatchObject({ aborted: true, transient: false });
  });
});
