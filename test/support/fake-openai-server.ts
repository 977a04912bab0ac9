import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fake model does for one request. */
export type FakeReply =
  /** Streams these content deltas (chat.completion.chunk), then finish_reason, usage (unless `noUsage`) and [DONE]. */
  | { kind: 'stream'; tokens: string[]; delayMs?: number; noUsage?: boolean }
  /** Answers with this HTTP status and an error body: OpenAI's shape with `message` (if given), or `body` as it is. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; message?: string; body?: string }
  /** Streams these deltas, then destroys the connection without finishing. */
  | { kind: 'broken'; tokens: string[] }
  /** A well-formed stream with no content at all. */
  | { kind: 'empty' }
  /** Sends these deltas (maybe none), then never another byte. */
  | { kind: 'hang'; tokens?: string[] }
  /** Resets the connection (TCP RST) without answering. */
  | { kind: 'reset' }
  /** Never answers, not even the status line. */
  | { kind: 'silent' }
  /**
   * Streams `tokens` (maybe none), then these tool calls as `tool_calls` deltas: the first chunk of
   * each carries its index, id and name, the next ones its arguments piece by piece; with
   * `interleave`, the pieces of parallel calls alternate. Ends with finish_reason "tool_calls";
   * with `hangAfter`, sends that many pieces and then never another byte.
   */
  | { kind: 'tool_calls'; tokens?: string[]; calls: FakeToolCall[]; interleave?: boolean; delayMs?: number; hangAfter?: number };

/** One tool call the fake model makes, its arguments split into the pieces it streams them as. */
export interface FakeToolCall {
  id: string;
  name: string;
  arguments: string[];
}

/** One request the fake received. */
export interface RecordedRequest {
  path: string;
  authorization: string | undefined;
  body: {
    model?: string;
    stream?: boolean;
    max_tokens?: number;
    messages?: { role: string; content: unknown; tool_calls?: unknown[]; tool_call_id?: string }[];
    tools?: { type: string; function: { name: string; description?: string; parameters?: unknown; strict?: boolean } }[];
    tool_choice?: unknown;
    [key: string]: unknown;
  };
}

/** A fake OpenAI-compatible server speaking the real chat-completions streaming wire format. */
export interface FakeOpenAIServer {
  /** Base URL to put in OPENAI_BASE_URL or GEMINI_BASE_URL (ends in /v1). */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Replies used in order, one per request; when none is left, `fallback` answers. */
  enqueue(...replies: FakeReply[]): void;
  fallback: FakeReply;
  /** Status of GET /models (the provider health probe); 404 by default, as servers without the route answer. */
  modelsStatus: number;
  /** Resolves when the fake has seen `count` requests' connections close (for "nothing left running" checks). */
  closedConnections(): number;
  close(): Promise<void>;
}

const CREATED = 1_700_000_000;

function chunk(id: string, model: string, delta: Record<string, unknown>, finishReason: string | null = null): string {
  const payload = {
    id,
    object: 'chat.completion.chunk',
    created: CREATED,
    model,
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  };
  return `data: ${JSON.stringify(payload)}\n\n`;
}

function usageChunk(id: string, model: string, completionTokens: number): string {
  const payload = {
    id,
    object: 'chat.completion.chunk',
    created: CREATED,
    model,
    choices: [],
    usage: { prompt_tokens: 11, completion_tokens: completionTokens, total_tokens: 11 + completionTokens },
  };
  return `data: ${JSON.stringify(payload)}\n\n`;
}

async function streamToolCalls(
  response: http.ServerResponse,
  id: string,
  model: string,
  reply: Extract<FakeReply, { kind: 'tool_calls' }>,
): Promise<void> {
  const pause = () => (reply.delayMs ? new Promise((resolve) => setTimeout(resolve, reply.delayMs)) : Promise.resolve());
  const pieces: { index: number; delta: Record<string, unknown> }[][] = reply.calls.map((call, index) => [
    { index, delta: { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } } },
    ...call.arguments.map((part) => ({ index, delta: { index, function: { arguments: part } } })),
  ]);
  const order = reply.interleave
    ? Array.from({ length: Math.max(...pieces.map((list) => list.length)) }, (_, step) =>
        pieces.map((list) => list[step]).filter((piece) => piece !== undefined),
      ).flat()
    : pieces.flat();
  for (const [sent, piece] of order.entries()) {
    if (sent === reply.hangAfter) return;
    await pause();
    if (response.destroyed) return;
    response.write(chunk(id, model, { tool_calls: [piece.delta] }));
  }
  response.write(chunk(id, model, {}, 'tool_calls'));
  response.write(usageChunk(id, model, reply.calls.length * 5));
  response.end('data: [DONE]\n\n');
}

/** Starts the fake on a free loopback port. */
export async function startFakeOpenAI(): Promise<FakeOpenAIServer> {
  const queue: FakeReply[] = [];
  const requests: RecordedRequest[] = [];
  let closed = 0;
  let sequence = 0;
  const sockets = new Set<import('node:net').Socket>();

  const server = http.createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => {
      response.on('close', () => closed++);
      let body: RecordedRequest['body'] = {};
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as RecordedRequest['body'];
      } catch {
        // recorded as empty
      }
      requests.push({ path: request.url ?? '', authorization: request.headers.authorization, body });
      if (request.url?.endsWith('/models')) {
        response.writeHead(fake.modelsStatus, { 'content-type': 'application/json' });
        response.end(
          fake.modelsStatus === 200 ? '{"object":"list","data":[{"id":"fake-model","object":"model"}]}' : '{"error":{"message":"no"}}',
        );
        return;
      }
      if (!request.url?.endsWith('/chat/completions')) {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
        return;
      }
      const reply = queue.shift() ?? fake.fallback;
      void respond(reply, body.model ?? 'fake-model', response);
    });
  });

  async function respond(reply: FakeReply, model: string, response: http.ServerResponse): Promise<void> {
    const id = `chatcmpl-${++sequence}`;
    if (reply.kind === 'reset') {
      response.socket?.resetAndDestroy();
      return;
    }
    if (reply.kind === 'silent') return;
    if (reply.kind === 'status') {
      response.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      response.end(
        reply.body ??
          JSON.stringify({
            error: { message: reply.message ?? `fake upstream error ${reply.status} with secret body`, type: 'fake', code: null },
          }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.write(chunk(id, model, { role: 'assistant', content: '' }));
    const tokens = reply.kind === 'empty' ? [] : (reply.tokens ?? []);
    for (const token of tokens) {
      if ((reply.kind === 'stream' || reply.kind === 'tool_calls') && reply.delayMs)
        await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
      if (response.destroyed) return;
      response.write(chunk(id, model, { content: token }));
    }
    if (reply.kind === 'tool_calls') {
      await streamToolCalls(response, id, model, reply);
      return;
    }
    if (reply.kind === 'broken') {
      // Let the deltas leave before the connection dies mid-answer.
      setTimeout(() => response.socket?.destroy(), 20);
      return;
    }
    if (reply.kind === 'hang') return;
    response.write(chunk(id, model, {}, 'stop'));
    if (reply.kind !== 'stream' || !reply.noUsage) response.write(usageChunk(id, model, tokens.length));
    response.end('data: [DONE]\n\n');
  }

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeOpenAIServer = {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    enqueue: (...replies) => queue.push(...replies),
    fallback: { kind: 'stream', tokens: ['Hello', ' from', ' the', ' fake', ' model', '.'] },
    modelsStatus: 404,
    closedConnections: () => closed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
