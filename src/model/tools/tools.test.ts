import { tool } from '@openai/agents-core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from '../../config.js';
import { createCalculatorTool } from './calculator.js';
import type { ChatTool } from './chat-tool.js';
import { createConvertUnitsTool } from './convert-units.js';
import { createCurrentTimeTool, resolveTimeZone } from './current-time.js';
import { createToolSet } from './tool-set.js';
import { MAX_TOOL_OUTPUT_CHARS, runToolCall } from './tool-runner.js';

const NOW = new Date('2026-01-15T12:00:00Z');
const builtIns = new Map<string, ChatTool>([
  ['get_current_time', createCurrentTimeTool(() => NOW)],
  ['calculate', createCalculatorTool()],
  ['convert_units', createConvertUnitsTool()],
]);

const call = (
  name: string,
  args: unknown,
  tools: ReadonlyMap<string, ChatTool> = builtIns,
  timeoutMs = 1000,
  signal = new AbortController().signal,
) =>
  runToolCall(tools, { callId: 'call_1', name, arguments: typeof args === 'string' ? args : JSON.stringify(args) }, { timeoutMs, signal });

describe('the built-in tools', () => {
  it('tells the time in an IANA zone, a city or UTC', async () => {
    await expect(call('get_current_time', { time_zone: 'Asia/Tokyo' })).resolves.toMatchObject({
      output: 'Thursday 2026-01-15 21:00:00 in Asia/Tokyo (UTC+09:00)',
      isError: false,
    });
    expect((await call('get_current_time', { time_zone: 'new york' })).output).toBe(
      'Thursday 2026-01-15 07:00:00 in America/New_York (UTC-05:00)',
    );
    expect((await call('get_current_time', { time_zone: 'utc' })).output).toBe('Thursday 2026-01-15 12:00:00 in UTC (UTC+00:00)');
    expect(resolveTimeZone('US/Pacific')).toBe('America/Los_Angeles');
  });

  it('gives a clear error result for a time zone that does not exist', async () => {
    const outcome = await call('get_current_time', { time_zone: 'Mars/Olympus_Mons' });
    expect(outcome).toMatchObject({ isError: true });
    expect(outcome.output).toBe(
      'Error: "Mars/Olympus_Mons" is not a time zone I know. Use an IANA name such as Asia/Tokyo, Europe/Paris, America/New_York or UTC.',
    );
  });

  it('calculates, and reports division by zero and garbage as errors', async () => {
    await expect(call('calculate', { expression: '12*(3+4)' })).resolves.toMatchObject({ output: '12*(3+4) = 84', isError: false });
    await expect(call('calculate', { expression: '1/0' })).resolves.toMatchObject({ output: 'Error: division by zero', isError: true });
    await expect(call('calculate', { expression: 'drop table' })).resolves.toMatchObject({
      output: 'Error: unknown name "drop" at position 1',
      isError: true,
    });
  });

  it('converts units, in words', async () => {
    expect((await call('convert_units', { value: 5, from_unit: 'km', to_unit: 'miles' })).output).toBe('5 kilometers = 3.106855961 miles');
    expect((await call('convert_units', { value: 100, from_unit: 'C', to_unit: 'F' })).output).toBe(
      '100 degrees Celsius = 212 degrees Fahrenheit',
    );
    expect((await call('convert_units', { value: 1, from_unit: 'foot', to_unit: 'in' })).output).toBe('1 foot = 12 inches');
    expect((await call('convert_units', { value: 10, from_unit: 'm/s', to_unit: 'km/h' })).output).toBe(
      '10 meters per second = 36 kilometers per hour',
    );
    expect(await call('convert_units', { value: 5, from_unit: 'km', to_unit: 'kg' })).toMatchObject({
      output: 'Error: cannot convert kilometers (length) to kilograms (mass): they measure different things',
      isError: true,
    });
  });

  it('are the ones TOOLS turns on', async () => {
    expect([...(await createToolSet(loadConfig({}, undefined))).keys()]).toEqual(['get_current_time', 'calculate', 'convert_units']);
    expect([...(await createToolSet(loadConfig({ TOOLS: 'convert_units' }, undefined))).keys()]).toEqual(['convert_units']);
    expect((await createToolSet(loadConfig({ TOOLS: 'none' }, undefined))).size).toBe(0);
  });
});

describe('running a tool call', () => {
  it('answers arguments that miss the schema, or are not JSON, with an error the model can act on', async () => {
    const wrong = await call('calculate', { expr: '1+1' });
    expect(wrong.isError).toBe(true);
    expect(wrong.output).toMatch(/^Error: the arguments do not match the parameters of calculate/);
    expect((await call('calculate', '{"expression": ')).output).toMatch(/^Error: the arguments do not match the parameters of calculate/);
  });

  it('answers a call of a tool that does not exist with the names of those that do', async () => {
    await expect(call('weather', {})).resolves.toMatchObject({
      output: 'Error: there is no tool named "weather". The tools are: get_current_time, calculate, convert_units.',
      isError: true,
    });
  });

  it('turns a throw into a one-line error result, never a stack', async () => {
    const throwing = tool({
      name: 'throwing',
      description: 'always fails',
      parameters: z.object({}),
      errorFunction: null,
      execute: () => {
        throw new Error('the backend is down\n    at secret (/srv/internal.js:1:1)');
      },
    });
    const outcome = await call('throwing', {}, new Map([['throwing', throwing]]));
    expect(outcome).toMatchObject({ output: 'Error: the backend is down', isError: true });
  });

  it('stops waiting for a tool past the timeout, tells the tool through its signal, and says so', async () => {
    let aborted = false;
    const slow = tool({
      name: 'slow',
      description: 'never finishes on its own',
      parameters: z.object({}),
      errorFunction: null,
      execute: (_args, _context, details) =>
        new Promise<string>((resolve) =>
          details?.signal?.addEventListener('abort', () => {
            aborted = true;
            resolve('too late');
          }),
        ),
    });
    const outcome = await call('slow', {}, new Map([['slow', slow]]), 50);
    expect(outcome).toMatchObject({ output: 'Error: the tool slow did not finish within 0.05 seconds.', isError: true });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(45);
    expect(aborted).toBe(true);
  });

  it('gives up at once with the turn’s own reason when the turn is aborted', async () => {
    const hanging = tool({
      name: 'hanging',
      description: 'waits forever',
      parameters: z.object({}),
      errorFunction: null,
      execute: () => new Promise<string>(() => {}),
    });
    const controller = new AbortController();
    const pending = call('hanging', {}, new Map([['hanging', hanging]]), 10_000, controller.signal);
    const reason = new Error('cancelled by the user');
    setTimeout(() => controller.abort(reason), 20);
    await expect(pending).rejects.toBe(reason);
  });

  it('passes objects on as JSON and cuts very long outputs', async () => {
    const tools = new Map<string, ChatTool>([
      [
        'object',
        tool({
          name: 'object',
          description: 'an object',
          parameters: z.object({}),
          errorFunction: null,
          execute: () => ({ a: 1, b: [true] }),
        }),
      ],
      [
        'long',
        tool({
          name: 'long',
          description: 'a lot',
          parameters: z.object({}),
          errorFunction: null,
          execute: () => 'x'.repeat(MAX_TOOL_OUTPUT_CHARS + 10),
        }),
      ],
    ]);
    expect((await call('object', {}, tools)).output).toBe('{"a":1,"b":[true]}');
    const long = (await call('long', {}, tools)).output;
    expect(long.startsWith('x'.repeat(MAX_TOOL_OUTPUT_CHARS))).toBe(true);
    expect(long.endsWith(`… (cut at ${MAX_TOOL_OUTPUT_CHARS} characters)`)).toBe(true);
  });

  it('never cuts a long output inside a character made of two UTF-16 units', async () => {
    const emoji = tool({
      name: 'emoji',
      description: 'faces',
      parameters: z.object({}),
      errorFunction: null,
      execute: () => `${'x'.repeat(MAX_TOOL_OUTPUT_CHARS - 1)}${'😀'.repeat(10)}`,
    });
    const output = (await call('emoji', {}, new Map([['emoji', emoji]]))).output;
    expect(output).toBe(`${'x'.repeat(MAX_TOOL_OUTPUT_CHARS - 1)}… (cut at ${MAX_TOOL_OUTPUT_CHARS} characters)`);
    expect(output).not.toMatch(/[\ud800-\udfff]/u);
  });
});
