import { expect } from 'vitest';
import { tool } from '@openai/agents-core';
import { z } from 'zod';
import { loadConfig } from '../../src/config.js';
import type { ChatTool } from '../../src/model/tools/chat-tool.js';
import { createToolSet } from '../../src/model/tools/tool-set.js';
import type { FakeOpenAIServer } from './fake-openai-server.js';
import { tokensOf, type SseEvent } from './sse-client.js';
import { getJson } from './test-server.js';

/** The built-in tools plus three for failure cases: `explode` throws, `sleep_for` waits `ms`, `hang` never returns. */
export async function toolsForTests(): Promise<Map<string, ChatTool>> {
  const tools = new Map(await createToolSet(loadConfig({}, undefined)));
  tools.set(
    'explode',
    tool({
      name: 'explode',
      description: 'Always fails.',
      parameters: z.object({}),
      errorFunction: null,
      execute: () => {
        throw new Error('the sensor is offline');
      },
    }),
  );
  tools.set(
    'sleep_for',
    tool({
      name: 'sleep_for',
      description: 'Waits a number of milliseconds.',
      parameters: z.object({ ms: z.number() }),
      errorFunction: null,
      execute: async ({ ms }, _context, details) => {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, ms);
          details?.signal?.addEventListener('abort', () => clearTimeout(timer));
        });
        return `slept ${ms} ms`;
      },
    }),
  );
  tools.set(
    'hang',
    tool({
      name: 'hang',
      description: 'Never answers.',
      parameters: z.object({}),
      errorFunction: null,
      execute: () => new Promise<string>(() => {}),
    }),
  );
  return tools;
}

/** The chat-completions requests the fake received, in order. */
export function chatRequests(fake: FakeOpenAIServer) {
  return fake.requests.filter((request) => request.path.endsWith('/chat/completions'));
}

/** The events after `start`, as `type` or `type:call_id`, for comparing orders at a glance. */
export function shapeOf(events: SseEvent[]): string[] {
  return events
    .filter((event) => event.json.type !== 'start')
    .map((event) => (event.json.call_id ? `${event.json.type}:${event.json.call_id}` : event.json.type));
}

/**
 * Checks the invariants of a whole turn read in pieces: every event after `start` exactly once with
 * ids `<turn>/0, 1, 2, …`, token_index without gaps, and the tokens joined equal to `final_output`
 * and to the stored answer.
 */
export async function expectWholeTurn(url: string, pieces: SseEvent[][], contextId: string): Promise<SseEvent[]> {
  const events = pieces.flatMap((piece) => piece.filter((event) => event.json.type !== 'start'));
  const turnId = pieces[0]![0]!.json.turn_id as string;
  expect(events.map((event) => event.id)).toEqual(events.map((_, position) => `${turnId}/${position}`));
  const indices = events.filter((event) => event.json.type === 'token').map((event) => event.json.token_index);
  expect(indices).toEqual(indices.map((_, index) => index));
  const end = events.at(-1)!.json;
  expect(end.type).toBe('end');
  expect(tokensOf(events).join('')).toBe(end.final_output);
  const conversation = (await getJson(`${url}/api/v1/conversations/${contextId}`)).body;
  expect(conversation.turns.at(-1).answer).toBe(end.final_output);
  return events;
}
