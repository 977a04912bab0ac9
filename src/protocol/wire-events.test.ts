import { describe, expect, it } from 'vitest';
import { formatEventId, parseEventId } from './event-id.js';
import { streamEventSchema, type StreamEventType } from './events.js';
import {
  endEventData,
  errorEventData,
  resyncEventData,
  startEventData,
  tokenEventData,
  toolCallEventData,
  toolResultEventData,
} from './wire-events.js';

// The server builds its events by hand (the token event with a template, for speed); these tests hold
// every builder to the protocol's schemas, field order included, so the two cannot drift apart.

/** Text that JSON must escape, and characters beyond the Basic Multilingual Plane. */
const AWKWARD = [
  '',
  ' ',
  '\n',
  'line one\nline two\r\n',
  'tab\there',
  'quote " and backslash \\',
  '\u0000\u001f\u2028\u2029',
  'é 日本語 👋🏽',
  '</script>',
];

/** Every builder's output, with edge values, named by the event type it must parse as. */
function builtEvents(): [StreamEventType, string][] {
  const events: [StreamEventType, string][] = [
    ['start', startEventData('ctx', 'turn-1', 'chatwait-demo', false)],
    ['start', startEventData('a.b:c_d-1', 'T'.repeat(128), '', true)],
    ['tool_call', toolCallEventData('call_1', 'calculator', '{"expression":"2+2"}')],
    ['tool_call', toolCallEventData('call_2', 'current_time', '')],
    ['tool_result', toolResultEventData('call_1', '4', false, 12.5)],
    ['tool_result', toolResultEventData('call_2', 'Error: timed out\nafter 5 s', true, 0)],
    ['error', errorEventData('ctx', 'turn-1', 'UPSTREAM_ERROR', 'The model provider had an error. Please try again in a moment.', true)],
    ['error', errorEventData('ctx', 'turn-1', 'MODEL_UNAVAILABLE', 'Check "OPENAI_API_KEY"\non the server.', false)],
    ['resync', resyncEventData('turn-1', 'Hello world!', 2)],
    ['resync', resyncEventData('turn-1', '', 0)],
  ];
  AWKWARD.forEach((token, index) => {
    events.push(['token', tokenEventData(JSON.stringify('ctx'), token, index)]);
    events.push(['resync', resyncEventData('turn-1', token, index)]);
  });
  events.push(['token', tokenEventData(JSON.stringify('a.b:c_d-1'), 'last', 999_999_999)]);
  const end = {
    contextId: 'ctx',
    turnId: 'turn-1',
    finalOutput: AWKWARD.join(''),
    tokenCount: AWKWARD.length,
    model: 'fake-model',
  };
  events.push([
    'end',
    endEventData({
      ...end,
      finishReason: 'stop',
      usage: { input_tokens: 10, output_tokens: 9, total_tokens: 19 },
      timings: { ttft_ms: 0.4, total_ms: 812.3 },
    }),
  ]);
  // No usage reported, no token ever came: null, never absent.
  events.push(['end', endEventData({ ...end, finishReason: 'cancelled', usage: undefined, timings: { ttft_ms: null, total_ms: 0 } })]);
  events.push(['end', endEventData({ ...end, finishReason: 'interrupted', usage: undefined, timings: { ttft_ms: 3, total_ms: 4 } })]);
  events.push([
    'end',
    endEventData({
      ...end,
      finishReason: 'error',
      usage: { input_tokens: 0, output_tokens: 0, total_tokens: 0 },
      timings: { ttft_ms: null, total_ms: 1 },
    }),
  ]);
  return events;
}

describe('the event builders', () => {
  it('write every event type of the stream', () => {
    const built = new Set(builtEvents().map(([type]) => type));
    expect([...built].sort()).toEqual(streamEventSchema.options.map((event) => event.shape.type.value).sort());
  });

  it("write events the stream's schema accepts, as the type they claim, with event_type equal to type", () => {
    for (const [type, data] of builtEvents()) {
      const parsed = streamEventSchema.safeParse(JSON.parse(data));
      expect(parsed.error, data).toBeUndefined();
      expect(parsed.data!.type).toBe(type);
      expect(parsed.data!.event_type).toBe(type);
    }
  });

  it("write each event's fields and nothing else, in the order of its schema", () => {
    for (const [type, data] of builtEvents()) {
      const schema = streamEventSchema.options.find((event) => event.shape.type.value === type)!;
      expect(Object.keys(JSON.parse(data)), data).toEqual(Object.keys(schema.shape));
    }
  });

  it('keep text exactly as given: newlines, escapes, Unicode and empty tokens', () => {
    AWKWARD.forEach((token, index) => {
      expect(JSON.parse(tokenEventData(JSON.stringify('ctx'), token, index))).toMatchObject({ token, token_index: index });
    });
    expect(
      JSON.parse(
        endEventData({
          contextId: 'c',
          turnId: 't',
          finalOutput: AWKWARD.join(''),
          tokenCount: 1,
          finishReason: 'stop',
          usage: undefined,
          timings: { ttft_ms: null, total_ms: 0 },
          model: 'm',
        }),
      ).final_output,
    ).toBe(AWKWARD.join(''));
  });

  it('write the token event in the original ChatWait field order, byte for byte', () => {
    expect(tokenEventData(JSON.stringify('ctx'), 'Hi\n', 0)).toBe(
      '{"token":"Hi\\n","token_index":0,"context_id":"ctx","event_type":"token","type":"token"}',
    );
  });

  it('meet a schema that refuses wrong fields, so the checks above can fail', () => {
    const token = JSON.parse(tokenEventData(JSON.stringify('ctx'), 'x', 0));
    expect(streamEventSchema.safeParse({ ...token, token_index: -1 }).success).toBe(false);
    expect(streamEventSchema.safeParse({ ...token, type: 'tokens' }).success).toBe(false);
    const end = JSON.parse(
      endEventData({
        contextId: 'c',
        turnId: 't',
        finalOutput: '',
        tokenCount: 0,
        finishReason: 'stop',
        usage: undefined,
        timings: { ttft_ms: null, total_ms: 0 },
        model: 'm',
      }),
    );
    expect(streamEventSchema.safeParse({ ...end, finish_reason: 'done' }).success).toBe(false);
    const { usage: _usage, ...withoutUsage } = end;
    expect(streamEventSchema.safeParse(withoutUsage).success).toBe(false);
    const error = JSON.parse(errorEventData('c', 't', 'X', 'm', true));
    expect(streamEventSchema.safeParse({ ...error, retryable: 'yes' }).success).toBe(false);
  });
});

describe('event ids', () => {
  it('round-trip every position: numbers, start and resync', () => {
    for (const position of [0, 1, 42, 999_999_999, 'start', 'resync'] as const) {
      for (const turnId of ['turn-1', '9f1c2d3e-0000-4000-8000-000000000000', 'a.b:c_d', 'x'.repeat(128)]) {
        const id = formatEventId(turnId, position);
        expect(id).toBe(`${turnId}/${position}`);
        expect(parseEventId(id)).toEqual({ turnId, position });
      }
    }
  });

  it('ignore the whitespace around an id', () => {
    expect(parseEventId('  turn-1/7\t')).toEqual({ turnId: 'turn-1', position: 7 });
  });

  it('refuse anything else', () => {
    for (const text of [
      '',
      'turn-1',
      'turn-1/',
      '/3',
      'turn-1/-1',
      'turn-1/1.5',
      'turn-1/1e3',
      'turn-1/1234567890',
      'turn-1/end',
      'turn-1/START',
      'turn 1/3',
      'a/b/3',
      `${'x'.repeat(129)}/3`,
      'turn-1/3 4',
      'tür/3',
    ]) {
      expect(parseEventId(text), text).toBeUndefined();
    }
  });
});
