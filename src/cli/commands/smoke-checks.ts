import { randomUUID } from 'node:crypto';
import type { ApiClient } from '../api-client.js';
import { check, checkTurnEvents, collect, openStream, tokensOf, type SmokeEvent } from './smoke-stream.js';

/** What the checks share: the client, and what earlier checks created or learnt. */
export interface SmokeState {
  client: ApiClient;
  /** Conversations this run created (deleted by the last check). */
  contextIds: string[];
  streamed?: { contextId: string; message: string; finalOutput: string };
  waited?: { contextId: string; message: string; answer: string };
  resumed?: { contextId: string; message: string; turnId: string; tokens: string[]; finalOutput: string };
}

/** One smoke check: throws to fail, returns a detail to show on success. */
export interface SmokeCheck {
  name: string;
  run(state: SmokeState, signal: AbortSignal): Promise<string | void>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function newContext(state: SmokeState): string {
  const contextId = `smoke-${randomUUID()}`;
  state.contextIds.push(contextId);
  return contextId;
}

/** Checks an error response: the status, and the JSON format `{error_code, message, request_id}`. */
function checkErrorFormat(what: string, response: { status: number; body: Json }, status: number, code: string): void {
  check(response.status === status, `${what}: HTTP ${response.status}, expected ${status}`);
  const body = response.body;
  check(body && body.error_code === code, `${what}: error_code ${JSON.stringify(body?.error_code)}, expected ${code}`);
  check(typeof body.message === 'string' && body.message !== '', `${what}: no message`);
  check(typeof body.request_id === 'string' && body.request_id !== '', `${what}: no request_id`);
}

/** The checks, in order, as the original project's test_api.py ran them, and more. */
export const SMOKE_CHECKS: SmokeCheck[] = [
  {
    name: 'health',
    async run({ client }, signal) {
      const { status, headers, body } = await client.json<Json>('/health', { allowErrors: true, signal });
      check(status === 200, `GET /health answered HTTP ${status}`);
      check(body?.service === 'chatwait', 'GET /health does not say service "chatwait"');
      check(headers.has('x-request-id'), 'no X-Request-ID header');
      const failing = Object.entries(body.checks ?? {}).filter(([, value]) => (value as Json)?.status !== 'ok');
      check(
        body.status === 'healthy',
        `status is ${body.status}: ${failing.map(([name, value]) => `${name} ${(value as Json)?.detail ?? 'failing'}`).join(', ')}`,
      );
      return `healthy, model ${body.model?.provider}/${body.model?.name}`;
    },
  },
  {
    name: 'liveness and readiness',
    async run({ client }, signal) {
      const live = await client.json<Json>('/api/v1/health/live', { allowErrors: true, signal });
      check(live.status === 200 && live.body?.status === 'alive', `GET /api/v1/health/live answered HTTP ${live.status}`);
      const ready = await client.json<Json>('/api/v1/health/ready', { allowErrors: true, signal });
      check(
        ready.status === 200 && ready.body?.status === 'ready',
        `not ready (HTTP ${ready.status}${ready.body?.reason ? `: ${ready.body.reason}` : ''})`,
      );
    },
  },
  {
    name: 'wait',
    async run(state, signal) {
      const contextId = newContext(state);
      const message = 'ChatWait smoke test: please say hello.';
      const { body } = await state.client.json<Json>('/api/v1/chat/wait', { body: { message, context_id: contextId }, signal });
      check(typeof body.message === 'string' && body.message !== '', 'the answer is empty');
      check(body.context_id === contextId, `context_id ${body.context_id} is not the one sent`);
      check(Number.isInteger(body.token_count) && body.token_count > 0, `token_count ${body.token_count} is not a positive integer`);
      check(typeof body.processing_time_ms === 'number' && body.processing_time_ms >= 0, 'processing_time_ms is missing');
      check(typeof body.turn_id === 'string' && typeof body.model === 'string', 'turn_id or model is missing');
      state.waited = { contextId, message, answer: body.message };
      return `${body.token_count} tokens in ${Math.round(body.processing_time_ms)} ms`;
    },
  },
  {
    name: 'streaming',
    async run(state, signal) {
      const contextId = newContext(state);
      const message = 'ChatWait smoke test: explain streaming in two sentences.';
      const stream = await openStream(state.client, { method: 'GET', fields: { message, context_id: contextId }, signal });
      check(stream.status === 200, `HTTP ${stream.status}: ${JSON.stringify(stream.error)}`);
      check(stream.headers.get('content-type')?.startsWith('text/event-stream'), 'not text/event-stream');
      check(stream.headers.get('cache-control')?.includes('no-cache'), 'no Cache-Control: no-cache');
      const events = await collect(stream);
      const start = events[0];
      check(start?.json.type === 'start', `the first event is ${start?.json.type ?? 'missing'}, not start`);
      check(start.json.context_id === contextId && start.json.resumed === false, 'start has the wrong context_id or resumed');
      check(start.id === `${start.json.turn_id}/start`, `start's id is ${start.id}`);
      const end = checkTurnEvents(start.json.turn_id, [events.slice(1)]);
      check(end.finish_reason === 'stop', `finish_reason ${end.finish_reason}`);
      state.streamed = { contextId, message, finalOutput: end.final_output };
      return `${end.token_count} tokens, index 0…${end.token_count - 1} in order, joined = final_output`;
    },
  },
  {
    name: 'stored answers',
    async run({ client, streamed, waited }, signal) {
      check(streamed && waited, 'needs the wait and streaming checks');
      for (const [kind, sent, answer] of [
        ['streamed', streamed, streamed.finalOutput],
        ['waited', waited, waited.answer],
      ] as const) {
        const { body } = await client.json<Json>(`/api/v1/conversations/${sent.contextId}?limit=1`, { signal });
        const turn = body.turns?.at(-1);
        check(turn?.user_message === sent.message, `the ${kind} message is not stored`);
        check(turn.answer === answer, `the stored ${kind} answer differs from the one received`);
        check(turn.status === 'complete', `the ${kind} turn is ${turn.status}, not complete`);
      }
    },
  },
  {
    name: 'resume with Last-Event-ID',
    async run(state, signal) {
      const contextId = newContext(state);
      const message = 'ChatWait smoke test: count from 1 to 40, one number per line (answer in 80 tokens).';
      const fields = { message, context_id: contextId };
      let first = await collect(
        await openStream(state.client, { method: 'POST', fields, signal }),
        (_event, events) => tokensOf(events).length === 3,
      );
      const turnId = first[0]?.json.turn_id;
      check(typeof turnId === 'string' && first.length > 1, 'no start event, or nothing after it');
      // A short answer may have ended before the cut: resume from its middle instead, which the log still holds.
      if (first.at(-1)!.json.type !== 'token') first = first.slice(0, Math.max(2, Math.ceil(first.length / 2)));
      const lastId = first.at(-1)!.id!;
      const second = await openStream(state.client, { method: 'POST', fields, headers: { 'last-event-id': lastId }, signal });
      check(second.status === 200, `the resume answered HTTP ${second.status}: ${JSON.stringify(second.error)}`);
      const rest = await collect(second);
      check(
        rest[0]?.json.type === 'start' && rest[0].json.resumed === true && rest[0].json.turn_id === turnId,
        'the resumed stream does not start with start (resumed: true, same turn_id)',
      );
      const end = checkTurnEvents(turnId, [first.slice(1), rest.slice(1)]);
      const tokens = tokensOf([...first, ...rest]).map((event: SmokeEvent) => event.json.token as string);
      state.resumed = { contextId, message, turnId, tokens, finalOutput: end.final_output };
      return `cut after ${lastId}, resumed from there: nothing repeated or skipped`;
    },
  },
  {
    name: 'resume with last_token_index',
    async run({ client, resumed }, signal) {
      check(resumed, 'needs the Last-Event-ID check');
      const from = Math.max(1, Math.floor(resumed.tokens.length / 2));
      const stream = await openStream(client, {
        method: 'GET',
        fields: { message: resumed.message, context_id: resumed.contextId, last_token_index: from },
        signal,
      });
      check(stream.status === 200, `HTTP ${stream.status}: ${JSON.stringify(stream.error)}`);
      const events = await collect(stream);
      check(events[0]?.json.resumed === true && events[0].json.turn_id === resumed.turnId, 'it did not resume the same turn');
      const tokens = tokensOf(events);
      check(
        tokens[0]?.json.token_index === from || resumed.tokens.length === from,
        `the replay starts at token_index ${tokens[0]?.json.token_index}, not ${from}`,
      );
      check(
        tokens.map((event) => event.json.token).join('') === resumed.tokens.slice(from).join(''),
        'the replayed tokens differ from the original ones',
      );
      check(events.at(-1)?.json.final_output === resumed.finalOutput, 'the replayed end differs');
      return `replayed from token ${from}`;
    },
  },
  {
    name: 'cancel',
    async run(state, signal) {
      const contextId = newContext(state);
      const message = 'ChatWait smoke test: a long answer to stop, count to 1000 (answer in 2000 tokens).';
      const stream = await openStream(state.client, { method: 'GET', fields: { message, context_id: contextId }, signal });
      check(stream.status === 200, `HTTP ${stream.status}: ${JSON.stringify(stream.error)}`);
      let cancel: Promise<{ body?: Json; error?: unknown }> | undefined;
      const events = await collect(stream, (event, all) => {
        if (!cancel && event.json.type === 'token') {
          const path = `/api/v1/chat/turns/${all[0]!.json.turn_id}/cancel`;
          cancel = state.client.json<Json>(path, { method: 'POST', signal }).then(
            ({ body }) => ({ body }),
            (error: unknown) => ({ error }),
          );
        }
        return event.json.type === 'end' || event.json.type === 'error';
      });
      check(cancel, 'no token came to cancel after');
      const { body: cancelled, error } = await cancel;
      if (error) throw error;
      const end = checkTurnEvents(events[0]!.json.turn_id, [events.slice(1)]);
      const expected = cancelled.status === 'cancelled' ? 'cancelled' : 'stop';
      check(end.finish_reason === expected, `the turn is ${cancelled.status} but its stream ended with finish_reason ${end.finish_reason}`);
      const { body } = await state.client.json<Json>(`/api/v1/conversations/${contextId}?limit=1`, { signal });
      check(
        body.turns?.at(-1)?.status === cancelled.status && body.turns.at(-1).answer === end.final_output,
        'the stored turn does not match the cancelled stream',
      );
      return cancelled.status === 'cancelled'
        ? `stopped after ${end.token_count} tokens, partial answer kept`
        : 'the answer ended before the cancel arrived';
    },
  },
  {
    name: 'conversations',
    async run({ client, contextIds }, signal) {
      const { body } = await client.json<Json>('/api/v1/conversations?limit=100', { signal });
      check(Array.isArray(body.conversations) && 'next_cursor' in body, 'not {conversations: [...], next_cursor}');
      const listed = new Set(body.conversations.map((conversation: Json) => conversation.context_id));
      const missing = contextIds.filter((contextId) => !listed.has(contextId));
      check(missing.length === 0, `not listed: ${missing.join(', ')}`);
      const first = await client.json<Json>('/api/v1/conversations?limit=1', { signal });
      check(
        first.body.conversations.length === 1 && typeof first.body.next_cursor === 'string',
        'limit=1 did not give one conversation and a next_cursor',
      );
      const second = await client.json<Json>(`/api/v1/conversations?limit=1&cursor=${encodeURIComponent(first.body.next_cursor)}`, {
        signal,
      });
      check(second.body.conversations[0]?.context_id !== first.body.conversations[0].context_id, 'the next page repeats the first');
      return `${body.conversations.length} listed, pages follow next_cursor`;
    },
  },
  {
    name: 'error format',
    async run({ client }, signal) {
      const missing = await client.json<Json>('/api/v1/chat/wait', { body: {}, allowErrors: true, signal });
      checkErrorFormat('POST /chat/wait {}', missing, 422, 'VALIDATION_ERROR');
      check(
        missing.body.detail?.some((item: Json) => item.loc?.join('.') === 'body.message'),
        'the 422 detail does not name body.message',
      );
      const noMessage = await client.json<Json>('/api/v1/chat/streaming', { allowErrors: true, signal });
      checkErrorFormat('GET /chat/streaming without a message', noMessage, 422, 'VALIDATION_ERROR');
      checkErrorFormat(
        'a whitespace message',
        await client.json<Json>('/api/v1/chat/wait', { body: { message: '   ' }, allowErrors: true, signal }),
        400,
        'EMPTY_MESSAGE',
      );
      checkErrorFormat(
        'an unknown conversation',
        await client.json<Json>(`/api/v1/conversations/smoke-${randomUUID()}`, { allowErrors: true, signal }),
        404,
        'NOT_FOUND',
      );
      checkErrorFormat(
        'cancelling an unknown turn',
        await client.json<Json>(`/api/v1/chat/turns/${randomUUID()}/cancel`, { method: 'POST', allowErrors: true, signal }),
        404,
        'NOT_FOUND',
      );
      return '422, 400 and 404 answered as {error_code, message, request_id}';
    },
  },
  {
    name: 'delete',
    async run({ client, contextIds }, signal) {
      for (const contextId of contextIds) {
        const response = await client.fetch(`/api/v1/conversations/${contextId}`, { method: 'DELETE', signal });
        await response.arrayBuffer();
        check(response.status === 204, `DELETE ${contextId} answered HTTP ${response.status}`);
      }
      for (const contextId of contextIds) {
        const { status } = await client.json(`/api/v1/conversations/${contextId}`, { allowErrors: true, signal });
        check(status === 404, `${contextId} is still there after DELETE`);
      }
      return `${contextIds.length} smoke conversations deleted`;
    },
  },
];
