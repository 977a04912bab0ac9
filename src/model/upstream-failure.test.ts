import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ModelTimeoutError } from '@openai/agents-core';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { describe, expect, it } from 'vitest';
import { InternalError, UpstreamError } from '../errors.js';
import { toolRefusalMessage } from './tool-support.js';
import { toUpstreamError } from './upstream-errors.js';
import { normalizeUpstreamFailure } from './upstream-failure.js';

/** An error as the openai package builds it from a provider's answer (the class follows the status). */
const providerError = (status: number, message: string, headers: Record<string, string> = {}) =>
  APIError.generate(status, { error: { message, type: 'test', code: null } }, undefined, new Headers(headers));

/** What Node's fetch really throws for a port nobody listens on: TypeError("fetch failed") caused by ECONNREFUSED. */
async function refusedFetchError(): Promise<unknown> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return fetch(`http://127.0.0.1:${port}/`).then(
    () => expect.unreachable('nothing listens there'),
    (error: unknown) => error,
  );
}

describe('normalizeUpstreamFailure', () => {
  it('reads the status, the provider message and Retry-After of a RateLimitError', () => {
    const error = providerError(429, 'Rate limit reached for requests', { 'retry-after': '2' });
    expect(error.constructor.name).toBe('RateLimitError');
    expect(normalizeUpstreamFailure(error)).toMatchObject({
      status: 429,
      retryAfterMs: 2000,
      providerMessage: 'Rate limit reached for requests',
      network: false,
      aborted: false,
      transient: true,
    });
  });

  it('prefers retry-after-ms, and reads a Retry-After given as an HTTP date', () => {
    expect(normalizeUpstreamFailure(providerError(429, 'slow down', { 'retry-after-ms': '1500', 'retry-after': '9' })).retryAfterMs).toBe(
      1500,
    );
    const inThirtySeconds = new Date(Date.now() + 30_000).toUTCString();
    const { retryAfterMs } = normalizeUpstreamFailure(providerError(503, 'overloaded', { 'retry-after': inThirtySeconds }));
    // The date has whole seconds: the wait is a little under 30 s, never more.
    expect(retryAfterMs).toBeGreaterThan(28_000);
    expect(retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('finds 408, 429 and 5xx worth retrying, and not 400, 401, 403, 404 or 422', () => {
    for (const status of [408, 429, 500, 502, 503])
      expect(normalizeUpstreamFailure(providerError(status, 'x')).transient, String(status)).toBe(true);
    for (const status of [400, 401, 403, 404, 422])
      expect(normalizeUpstreamFailure(providerError(status, 'x')).transient, String(status)).toBe(false);
  });

  it('reads a connection failure of the openai package, with or without a cause, as a transient network failure', async () => {
    const refused = await refusedFetchError();
    for (const error of [
      new APIConnectionError({ message: 'Connection error.', cause: refused as Error }),
      new APIConnectionTimeoutError(),
    ]) {
      expect(normalizeUpstreamFailure(error)).toMatchObject({ status: undefined, network: true, aborted: false, transient: true });
    }
  });

  it('reads what fetch throws (TypeError "fetch failed" with an ECONNREFUSED cause) as a network failure', async () => {
    const error = await refusedFetchError();
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error & { cause: { code: string } }).cause.code).toBe('ECONNREFUSED');
    expect(normalizeUpstreamFailure(error)).toMatchObject({ network: true, transient: true });
  });

  it('reads an aborted fetch, an APIUserAbortError and a fired signal as aborted, never worth retrying', async () => {
    const abortError = await fetch('http://127.0.0.1:9/', { signal: AbortSignal.abort() }).catch((error: unknown) => error);
    expect((abortError as Error).name).toBe('AbortError');
    for (const error of [abortError, new APIUserAbortError()]) {
      expect(normalizeUpstreamFailure(error)).toMatchObject({ aborted: true, transient: false });
    }
    const controller = new AbortController();
    controller.abort();
    expect(normalizeUpstreamFailure(providerError(503, 'overloaded'), controller.signal)).toMatchObject({
      status: 503,
      aborted: true,
      transient: false,
    });
  });

  it("takes the turn's own abort reason over whatever the call threw", () => {
    const controller = new AbortController();
    const timeout = new UpstreamError('UPSTREAM_TIMEOUT', 'The model did not answer within 5 seconds. Please try again.', {
      retryable: true,
    });
    controller.abort(timeout);
    const failure = normalizeUpstreamFailure(new APIConnectionError({ message: 'The model stream broke off.' }), controller.signal);
    expect(failure.own).toBe(timeout);
    expect(failure.transient).toBe(false);
    expect(toUpstreamError(failure)).toBe(timeout);
  });

  it('reads through wrappers: a plain Error, and the Agents SDK ModelTimeoutError, around a provider error', () => {
    const wrapped = [
      new Error('the model call failed', { cause: providerError(503, 'overloaded', { 'retry-after': '1' }) }),
      new ModelTimeoutError({ timeoutMs: 1000, cause: providerError(503, 'overloaded', { 'retry-after': '1' }) }),
    ];
    for (const error of wrapped) {
      expect(normalizeUpstreamFailure(error)).toMatchObject({
        status: 503,
        retryAfterMs: 1000,
        providerMessage: 'overloaded',
        transient: true,
      });
    }
    // The SDK's timeout alone is a network failure (its code is ETIMEDOUT), as the SDK itself classifies it.
    expect(normalizeUpstreamFailure(new ModelTimeoutError({ timeoutMs: 1000 }))).toMatchObject({ network: true, transient: true });
  });

  it('lets the outermost of an abort and a network failure explain the failure', () => {
    const abort = new DOMException('This operation was aborted', 'AbortError');
    expect(normalizeUpstreamFailure(new APIConnectionError({ message: 'The model stream broke off.', cause: abort }))).toMatchObject({
      network: true,
      aborted: false,
    });
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(
      normalizeUpstreamFailure(
        new Error('cancelled', { cause: Object.assign(new Error('aborted', { cause: reset }), { name: 'AbortError' }) }),
      ),
    ).toMatchObject({
      network: false,
      aborted: true,
    });
  });

  it('stops at our own error in the chain: its HTTP status is ours, not the provider’s', () => {
    const ours = new UpstreamError('UPSTREAM_ERROR', 'The model returned an empty answer. Please try again or rephrase your message.', {
      retryable: true,
    });
    const failure = normalizeUpstreamFailure(new Error('wrapped', { cause: ours }));
    expect(failure).toMatchObject({ own: ours, status: undefined, transient: false });
  });

  it('leaves anything else unexplained: an internal error for the user', () => {
    const failure = normalizeUpstreamFailure(new RangeError('a bug of ours'));
    expect(failure).toMatchObject({ status: undefined, network: false, aborted: false, transient: false });
    expect(toUpstreamError(failure)).toBeInstanceOf(InternalError);
  });
});

describe('the error mapping and the tool-refusal check over a normalised failure', () => {
  it('is retryable exactly when the failure is transient, for every provider status and network failure', async () => {
    const errors: unknown[] = [
      ...[400, 401, 403, 404, 408, 409, 422, 429, 500, 503].map((status) => providerError(status, 'x')),
      new APIConnectionTimeoutError(),
      await refusedFetchError(),
    ];
    for (const error of errors) {
      const failure = normalizeUpstreamFailure(error);
      expect(toUpstreamError(failure).retryable, String(failure.status ?? 'network')).toBe(failure.transient);
    }
  });

  it('names credentials and the model for 401, 403 and 404, and never shows the provider body', () => {
    for (const status of [401, 403, 404]) {
      const error = toUpstreamError(normalizeUpstreamFailure(providerError(status, 'secret body sk-123')));
      expect(error.code).toBe('MODEL_UNAVAILABLE');
      expect(error.message).not.toContain('secret');
    }
  });

  it('finds a refusal of tools in a 400, wrapped or not, and nowhere else', () => {
    const refusal = providerError(400, 'registry.ollama.ai/library/gemma:2b does not support tools');
    expect(toolRefusalMessage(normalizeUpstreamFailure(refusal))).toBe('registry.ollama.ai/library/gemma:2b does not support tools');
    expect(toolRefusalMessage(normalizeUpstreamFailure(new Error('wrapped', { cause: refusal })))).toBe(
      'registry.ollama.ai/library/gemma:2b does not support tools',
    );
    expect(toolRefusalMessage(normalizeUpstreamFailure(providerError(400, 'The message is too long')))).toBeUndefined();
    expect(toolRefusalMessage(normalizeUpstreamFailure(providerError(500, 'tools are broken')))).toBeUndefined();
  });
});
