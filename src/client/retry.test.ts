import { describe, expect, it } from 'vitest';
import { ApiError, toApiError, toNetworkError } from './api-error.js';
import { backoffDelay, shouldSendAgain, shouldSendWaitAgain, withRetries } from './retry.js';

const response = (status: number, headers: Record<string, string> = {}, statusText = '') => ({
  status,
  statusText,
  headers: new Headers(headers),
});

describe('retryability: the server says, the status only when it does not', () => {
  it("takes a JSON error body's retryable over its status", () => {
    expect(toApiError(response(503), JSON.stringify({ error_code: 'SERVER_BUSY', message: 'm', retryable: false })).retryable).toBe(false);
    expect(toApiError(response(500), JSON.stringify({ error_code: 'INTERNAL_ERROR', message: 'm', retryable: true })).retryable).toBe(true);
  });

  it('falls back to the status without one: no answer, 429, 502, 503, 504 yes; MODEL_UNAVAILABLE and the rest no', () => {
    const byStatus = (status: number, code = 'X') => new ApiError(status, code, 'm').retryable;
    expect([0, 429, 502, 503, 504].map((status) => byStatus(status))).toEqual([true, true, true, true, true]);
    expect([400, 401, 404, 409, 422, 500].map((status) => byStatus(status))).toEqual([false, false, false, false, false, false]);
    expect(byStatus(503, 'MODEL_UNAVAILABLE')).toBe(false);
    expect(toApiError(response(502, {}, 'Bad Gateway'), '<html>').retryable).toBe(true);
  });

  it('reads the error format and Retry-After, and describes an answer in another format by its status', () => {
    const error = toApiError(
      response(429, { 'retry-after': '7' }),
      JSON.stringify({ error_code: 'RATE_LIMITED', message: 'Slow down.', request_id: 'r1' }),
    );
    expect(error).toMatchObject({
      status: 429,
      code: 'RATE_LIMITED',
      message: 'Slow down.',
      requestId: 'r1',
      retryAfterSeconds: 7,
      retryable: true,
    });
    const foreign = toApiError(response(404, {}, 'Not Found'), 'nothing here', 'Is --url right?');
    expect(foreign).toMatchObject({
      code: 'HTTP_404',
      message: 'The server answered HTTP 404 Not Found without a ChatWait error body. Is --url right?',
      retryAfterSeconds: undefined,
    });
  });

  it('tells a refused connection from a broken one by what Node says', () => {
    const refused = toNetworkError(new TypeError('fetch failed', { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) }));
    expect(refused).toMatchObject({ status: 0, code: 'NETWORK_ERROR', refused: true, retryable: true });
    expect(toNetworkError(new TypeError('Failed to fetch')).refused).toBe(false);
    // Nobody listening: said at once, unless the server answered before.
    expect(shouldSendAgain(refused, false)).toBe(false);
    expect(shouldSendAgain(refused, true)).toBe(true);
  });

  it('does not send a wait request again after the turn itself failed: the server would only repeat it', () => {
    const failed = new ApiError(502, 'UPSTREAM_ERROR', 'The model failed.', { retryable: true });
    expect(shouldSendAgain(failed, true)).toBe(true);
    expect(shouldSendWaitAgain(failed, true)).toBe(false);
    expect(shouldSendWaitAgain(new ApiError(503, 'SERVER_BUSY', 'busy', { retryable: true }), true)).toBe(true);
    expect(shouldSendWaitAgain(new ApiError(0, 'NETWORK_ERROR', 'dropped'), true)).toBe(true);
  });
});

describe('backoff', () => {
  it('doubles from 250 ms up to 5 s, between half and all of that', () => {
    expect([0, 1, 2, 3, 4, 5, 9].map((attempt) => backoffDelay(attempt, undefined, () => 1))).toEqual([
      250, 500, 1000, 2000, 4000, 5000, 5000,
    ]);
    expect([0, 1, 5].map((attempt) => backoffDelay(attempt, undefined, () => 0))).toEqual([125, 250, 2500]);
  });

  it("takes the server's Retry-After instead, up to a minute", () => {
    expect(backoffDelay(0, 3)).toBe(3000);
    expect(backoffDelay(4, 0)).toBe(0);
    expect(backoffDelay(0, 3600)).toBe(60_000);
  });
});

describe('withRetries', () => {
  it('sends again while the rule allows and attempts remain, telling each retry', async () => {
    const failures = [
      new ApiError(429, 'RATE_LIMITED', 'wait', { retryAfterSeconds: 0 }),
      new ApiError(503, 'SERVER_BUSY', 'busy', { retryAfterSeconds: 0 }),
    ];
    const retries: number[] = [];
    let calls = 0;
    const result = await withRetries(
      async () => {
        const failure = failures[calls++];
        if (failure) throw failure;
        return 'answer';
      },
      (error) => error.retryable,
      { maxAttempts: 5, onRetry: ({ attempt }) => retries.push(attempt) },
    );
    expect(result).toBe('answer');
    expect(retries).toEqual([1, 2]);
  });

  it('gives up with the last error when attempts run out, and at once when the rule says no or the error is not an ApiError', async () => {
    let calls = 0;
    const busy = () => {
      calls++;
      return Promise.reject(new ApiError(503, 'SERVER_BUSY', 'busy', { retryAfterSeconds: 0 }));
    };
    await expect(withRetries(busy, () => true, { maxAttempts: 3 })).rejects.toMatchObject({ code: 'SERVER_BUSY' });
    expect(calls).toBe(3);
    calls = 0;
    await expect(withRetries(busy, () => false, { maxAttempts: 3 })).rejects.toMatchObject({ code: 'SERVER_BUSY' });
    expect(calls).toBe(1);
    const bug = new TypeError('a bug');
    await expect(
      withRetries(
        () => Promise.reject(bug),
        () => true,
        { maxAttempts: 3 },
      ),
    ).rejects.toBe(bug);
  });
});
