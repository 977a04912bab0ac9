import { afterEach, describe, expect, it } from 'vitest';
import type { Limiters, LimitsOptions } from '../../src/limits/limiter.js';

/** Limits for a contract test, with what it does not use left generous. */
function limitsWith(overrides: Partial<LimitsOptions>): LimitsOptions {
  return {
    turns: { requestsPerMinute: 60, burst: 3 },
    api: { requestsPerMinute: 600, burst: 30 },
    maxStreams: 2,
    maxGenerating: 1,
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The behaviour every limiter backend must have (memory, Redis): run it with a factory of fresh
 * limiters, each with its own keys. Timings are short real times, so a remote backend runs it too.
 */
export function limiterContract(name: string, create: (options: LimitsOptions) => Limiters | Promise<Limiters>): void {
  describe(`the ${name} limiters`, () => {
    const opened: Limiters[] = [];
    const fresh = async (overrides: Partial<LimitsOptions> = {}) => {
      const limiters = await create(limitsWith(overrides));
      opened.push(limiters);
      return limiters;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((limiters) => limiters.close()));
    });

    it('allows the burst, then refuses with the same decision fields as every backend', async () => {
      const { turns } = await fresh({ turns: { requestsPerMinute: 60, burst: 3 } });
      const decisions = [];
      for (let index = 0; index < 4; index++) decisions.push(await turns.consume('client-a'));
      expect(decisions.map((decision) => decision.allowed)).toEqual([true, true, true, false]);
      expect(decisions.map((decision) => decision.remaining)).toEqual([2, 1, 0, 0]);
      expect(decisions[0]).toEqual({ allowed: true, limit: 60, remaining: 2, resetSeconds: 1, retryAfterSeconds: 0 });
      // Within the first second: the bucket is about empty, refilling at one token a second.
      expect(decisions[3]).toEqual({ allowed: false, limit: 60, remaining: 0, resetSeconds: 3, retryAfterSeconds: 1 });
    });

    it('keeps one bucket per client, and one per limit', async () => {
      const { turns, api } = await fresh({ turns: { requestsPerMinute: 60, burst: 1 }, api: { requestsPerMinute: 60, burst: 1 } });
      expect((await turns.consume('client-a')).allowed).toBe(true);
      expect((await turns.consume('client-a')).allowed).toBe(false);
      expect((await turns.consume('client-b')).allowed).toBe(true);
      expect((await api.consume('client-a')).allowed).toBe(true);
    });

    it('refills at the sustained rate', async () => {
      // Ten a second, no burst beyond one.
      const { turns } = await fresh({ turns: { requestsPerMinute: 600, burst: 1 } });
      expect((await turns.consume('client-a')).allowed).toBe(true);
      expect((await turns.consume('client-a')).allowed).toBe(false);
      await sleep(150);
      expect((await turns.consume('client-a')).allowed).toBe(true);
      expect((await turns.consume('client-a')).allowed).toBe(false);
    });

    it('lets exactly the burst through when requests arrive at once', async () => {
      const { turns } = await fresh({ turns: { requestsPerMinute: 60, burst: 5 } });
      const decisions = await Promise.all(Array.from({ length: 20 }, () => turns.consume('client-a')));
      expect(decisions.filter((decision) => decision.allowed)).toHaveLength(5);
    });

    it('is off when the rate is 0', async () => {
      const { turns } = await fresh({ turns: { requestsPerMinute: 0, burst: 0 } });
      for (let index = 0; index < 50; index++) expect((await turns.consume('client-a')).allowed).toBe(true);
    });

    it('caps slots per client, and frees one on release, once however often it is released', async () => {
      const { streams } = await fresh({ maxStreams: 2 });
      const first = await streams.acquire('client-a');
      const second = await streams.acquire('client-a');
      expect(first).toBeTypeOf('function');
      expect(second).toBeTypeOf('function');
      expect(await streams.acquire('client-a')).toBeUndefined();
      expect(await streams.acquire('client-b')).toBeTypeOf('function');
      first!();
      first!();
      expect(await streams.acquire('client-a')).toBeTypeOf('function');
      expect(await streams.acquire('client-a')).toBeUndefined();
    });

    it('keeps the open-stream and generating caps apart', async () => {
      const { streams, generating } = await fresh({ maxStreams: 1, maxGenerating: 1 });
      expect(await streams.acquire('client-a')).toBeTypeOf('function');
      expect(await generating.acquire('client-a')).toBeTypeOf('function');
      expect(await generating.acquire('client-a')).toBeUndefined();
    });

    it('gives exactly the cap when slots are asked for at once', async () => {
      const { generating } = await fresh({ maxGenerating: 3 });
      const releases = await Promise.all(Array.from({ length: 10 }, () => generating.acquire('client-a')));
      expect(releases.filter((release) => release !== undefined)).toHaveLength(3);
    });

    it('has no cap when the cap is 0', async () => {
      const { streams } = await fresh({ maxStreams: 0 });
      for (let index = 0; index < 50; index++) expect(await streams.acquire('client-a')).toBeTypeOf('function');
    });
  });
}
