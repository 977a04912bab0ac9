import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from './hot-metrics.js';

async function freshText(buckets: number[]): Promise<string> {
  const registry = new Registry();
  new Histogram({ name: 'gap_seconds', help: 'Gaps', buckets, registers: [registry] });
  new Counter({ name: 'tokens_total', help: 'Tokens', registers: [registry] });
  return registry.metrics();
}

describe('hot-path metrics', () => {
  it('print exactly what prom-client prints for the same observations', async () => {
    const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1];
    const values = [0, 0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.02, 0.5, 1, 7, 120];
    const ours = new Registry();
    const theirs = new Registry();
    const hotHistogram = new HotHistogram('gap_seconds', 'Gaps', buckets, ours);
    const hotCounter = new HotCounter('tokens_total', 'Tokens', ours);
    const histogram = new Histogram({ name: 'gap_seconds', help: 'Gaps', buckets, registers: [theirs] });
    const counter = new Counter({ name: 'tokens_total', help: 'Tokens', registers: [theirs] });
    for (const value of values) {
      hotHistogram.observe(value);
      histogram.observe(value);
      hotCounter.inc();
      counter.inc();
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    ours.resetMetrics();
    // As a fresh prom-client histogram prints (after a reset prom-client prints no samples at all).
    expect(await ours.metrics()).toBe(await freshText(buckets));
  });
});
