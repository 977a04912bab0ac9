import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';

let fake: FakeOpenAIServer;
let server: TestServer;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  server = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model', UPSTREAM_MAX_RETRIES: '0' });
});
afterAll(async () => {
  await server.close();
  await fake.close();
});

/** What convert_units answered the model for each call, asked for in one round over the real streaming route. */
async function convert(calls: Record<string, { value: number; from_unit: string; to_unit: string }>): Promise<Record<string, string>> {
  fake.enqueue(
    {
      kind: 'tool_calls',
      calls: Object.entries(calls).map(([id, args]) => ({ id, name: 'convert_units', arguments: [JSON.stringify(args)] })),
    },
    { kind: 'stream', tokens: ['Done.'] },
  );
  const result = await readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent('convert these')}`);
  expect(result.events.at(-1)!.json.type).toBe('end');
  return Object.fromEntries(
    result.events.filter((event) => event.json.type === 'tool_result').map((event) => [event.json.call_id, event.json.output]),
  );
}

describe('convert_units, as the model gets it', () => {
  it('never answers Infinity: an overflow, or an amount too small to hold, is an error the model can act on', async () => {
    const outputs = await convert({
      huge: { value: 1e308, from_unit: 'light-years', to_unit: 'nm' },
      bits: { value: 1e300, from_unit: 'TB', to_unit: 'bits' },
      tiny: { value: 5e-324, from_unit: 'nm', to_unit: 'ly' },
      same: { value: 1e308, from_unit: 'ly', to_unit: 'light-years' },
    });
    expect(outputs.huge).toBe('Error: 1e+308 light-years in nanometers is too large for a number to hold (over 1.8e308)');
    expect(outputs.bits).toMatch(/^Error: .* too large/);
    expect(outputs.tiny).toMatch(/^Error: 5e-324 nanometers in light-years is too small for a number to hold/);
    expect(outputs.same).toBe('1e+308 light-years = 1e+308 light-years');
    for (const output of Object.values(outputs)) expect(output).not.toMatch(/Infinity|NaN/);
  });

  it('spells units right, one and many, in answers and errors alike', async () => {
    const outputs = await convert({
      celsius: { value: 1, from_unit: '°C', to_unit: '°F' },
      fahrenheit: { value: 212, from_unit: 'degrees fahrenheit', to_unit: 'celsius' },
      cold: { value: -300, from_unit: 'C', to_unit: 'K' },
      almostOne: { value: 1.00000000001, from_unit: 'km', to_unit: 'm' },
      stone: { value: 3, from_unit: 'st', to_unit: 'kg' },
      speed: { value: 1, from_unit: 'ft/s', to_unit: 'm/s' },
      pressure: { value: 2, from_unit: 'psi', to_unit: 'mmHg' },
      mismatch: { value: 5, from_unit: 'inch', to_unit: 'celsius' },
    });
    expect(outputs).toEqual({
      celsius: '1 degree Celsius = 33.8 degrees Fahrenheit',
      fahrenheit: '212 degrees Fahrenheit = 100 degrees Celsius',
      cold: 'Error: -300 degrees Celsius is below absolute zero',
      almostOne: '1 kilometer = 1000 meters',
      stone: '3 stone = 19.05087954 kilograms',
      speed: '1 foot per second = 0.3048 meters per second',
      pressure: '2 psi = 103.4298504 millimeters of mercury',
      mismatch: 'Error: cannot convert inches (length) to degrees Celsius (temperature): they measure different things',
    });
  });
});
