import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTamperingProxy, startTcpProxy } from './support/cutting-proxy.js';
import { closedPort, printed, runCli, startCli, SGR } from './support/run-cli.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

// `chatwait ask` run for real (node dist/cli/main.js) against a listening server; the other
// commands are in cli-commands.test.ts, `chat` in cli-chat.test.ts.

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '300' });
});
afterAll(() => server.close());

const at = (url = server.url) => ['--url', url];

/** The turns of a conversation, as stored. */
async function storedTurns(contextId: string, url = server.url): Promise<{ answer: string; status: string; user_message: string }[]> {
  return (await getJson(`${url}/api/v1/conversations/${contextId}`)).body.turns;
}

describe('chatwait ask', () => {
  it('writes the answer to stdout as it streams, exactly as stored', async () => {
    const cli = startCli(['ask', ...at(), '--context', 'ask-stream', 'answer in 300 tokens']);
    await cli.waitFor(({ stdout }) => stdout.length > 0, 'the first token');
    // The first tokens are out while the server is still generating: nothing waits for the end.
    expect((await storedTurns('ask-stream'))[0]!.status).toBe('streaming');
    expect(await cli.exited).toBe(0);
    const [turn] = await storedTurns('ask-stream');
    expect(turn!.status).toBe('complete');
    expect(cli.stdout()).toBe(printed(turn!.answer));
    expect(cli.stderr()).toBe('');
    expect(cli.stdout()).not.toMatch(SGR);
  });

  it('waits for the whole answer with --wait, and continues a conversation with --context', async () => {
    const first = await runCli(['ask', ...at(), '--wait', '--context', 'ask-wait', 'first question, 20 tokens']);
    expect(first.code).toBe(0);
    const second = await runCli(['ask', ...at(), '--wait', '-c', 'ask-wait', 'second question, 40 tokens']);
    expect(second.code).toBe(0);
    const turns = await storedTurns('ask-wait');
    expect([first.stdout, second.stdout]).toEqual(turns.map((turn) => printed(turn.answer)));
    expect(second.stdout).toContain('the one before this was: *first question, 20 tokens*');
  });

  it('prints each event once as a JSON line with --json', async () => {
    const { code, stdout } = await runCli(['ask', ...at(), '--json', '--context', 'ask-json', 'json lines, 50 tokens']);
    expect(code).toBe(0);
    const events = stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(events[0]).toMatchObject({ type: 'start', context_id: 'ask-json', resumed: false });
    const tokens = events.filter((event) => event.type === 'token');
    expect(tokens.map((event) => event.token_index)).toEqual(tokens.map((_, index) => index));
    const end = events.at(-1);
    expect(end).toMatchObject({ type: 'end', finish_reason: 'stop', token_count: tokens.length });
    expect(tokens.map((event) => event.token).join('')).toBe(end.final_output);
    expect(events).toHaveLength(tokens.length + 2);
  });

  it('prints the wait response as JSON with --wait --json, and reads the message from stdin', async () => {
    const { code, stdout } = await runCli(['ask', ...at(), '--wait', '--json', '--context', 'ask-stdin'], {
      input: 'from a pipe, 10 tokens\n',
    });
    expect(code).toBe(0);
    const body = JSON.parse(stdout);
    expect(body).toMatchObject({ context_id: 'ask-stdin', finish_reason: 'stop' });
    const [turn] = await storedTurns('ask-stdin');
    expect(turn!.user_message).toBe('from a pipe, 10 tokens');
    expect(body.message).toBe(turn!.answer);
  });

  it('resumes a stream cut mid-answer and prints the whole answer exactly once', async () => {
    const cli = startCli(['ask', ...at(), '--context', 'ask-drop', 'answer in 400 tokens']);
    await cli.waitFor(({ stdout }) => stdout.length > 200, 'some tokens');
    expect(server.dropStreams()).toBe(1);
    await cli.waitFor(({ stdout }) => stdout.length > 1500, 'more tokens after the cut');
    expect(server.dropStreams()).toBe(1);
    expect(await cli.exited).toBe(0);
    const turns = await storedTurns('ask-drop');
    // The model was asked once: one turn, answered whole.
    expect(turns).toHaveLength(1);
    expect(cli.stdout()).toBe(printed(turns[0]!.answer));
    expect(cli.stderr().match(/connection lost/g)).toHaveLength(2);
  });

  it('resumes a --json stream through a proxy that cuts the connection, every event once', async () => {
    const proxy = await startTcpProxy(server.url);
    try {
      const cli = startCli(['ask', ...at(proxy.url), '--json', '--context', 'ask-json-cut', 'answer in 400 tokens']);
      await cli.waitFor(({ stdout }) => stdout.split('\n').length > 30, 'some events');
      expect(proxy.cut()).toBeGreaterThan(0);
      expect(await cli.exited).toBe(0);
      const events = cli
        .stdout()
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(events.filter((event) => event.type === 'start')).toHaveLength(1);
      const tokens = events.filter((event) => event.type === 'token');
      expect(tokens.map((event) => event.token_index)).toEqual(tokens.map((_, index) => index));
      expect(tokens.map((event) => event.token).join('')).toBe(events.at(-1).final_output);
      expect((await storedTurns('ask-json-cut'))[0]!.answer).toBe(events.at(-1).final_output);
      expect(cli.stderr()).toContain('connection lost');
      // It resumed the SSE way, from the last event it had, rather than asking from the start.
      const resumedFrom = new RegExp(`^last-event-id: ${events[0].turn_id}/(\\d+)\r$`, 'im').exec(proxy.sent());
      expect(Number(resumedFrom?.[1])).toBeGreaterThan(25);
    } finally {
      await proxy.close();
    }
  });

  it('retries a --wait request cut mid-answer and gets the same turn, not a second one', async () => {
    const proxy = await startTcpProxy(server.url);
    try {
      const cli = startCli(['ask', ...at(proxy.url), '--wait', '--context', 'wait-cut', 'answer in 300 tokens']);
      await expect.poll(async () => (await storedTurns('wait-cut'))[0]?.status, { timeout: 10_000 }).toBe('streaming');
      // Cut, and keep the network down until the answer has ended: the retry must fetch it, not ask again.
      proxy.blocked = true;
      expect(proxy.cut()).toBeGreaterThan(0);
      await expect.poll(async () => (await storedTurns('wait-cut'))[0]?.status, { timeout: 10_000 }).toBe('complete');
      proxy.blocked = false;
      expect(await cli.exited).toBe(0);
      const turns = await storedTurns('wait-cut');
      expect(turns).toHaveLength(1);
      expect(cli.stdout()).toBe(printed(turns[0]!.answer));
      expect(cli.stderr()).toContain('connection lost');
    } finally {
      await proxy.close();
    }
  });

  it('fails when the server skips a token instead of printing a broken answer', async () => {
    const proxy = await startTamperingProxy(server.url, { dropTokenIndex: 5 });
    try {
      const { code, stderr } = await runCli(['ask', ...at(proxy.url), 'skip one, 20 tokens']);
      expect(code).toBe(1);
      expect(stderr).toContain('The stream skipped tokens (expected token_index 5, got 6)');
    } finally {
      await proxy.close();
    }
  });

  it('prints a token the server sends twice only once', async () => {
    const proxy = await startTamperingProxy(server.url, { repeatTokenIndex: 3 });
    try {
      const { code, stdout } = await runCli(['ask', ...at(proxy.url), '--context', 'ask-repeat', 'repeat one, 20 tokens']);
      expect(code).toBe(0);
      expect(stdout).toBe(printed((await storedTurns('ask-repeat'))[0]!.answer));
    } finally {
      await proxy.close();
    }
  });

  it('stops the answer on the server with Ctrl+C and exits 130', async () => {
    const cli = startCli(['ask', ...at(), '--context', 'ask-interrupt', 'answer in 3000 tokens']);
    await cli.waitFor(({ stdout }) => stdout.length > 100, 'some tokens');
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(130);
    const [turn] = await storedTurns('ask-interrupt');
    expect(turn!.status).toBe('cancelled');
    // Everything the server produced before the cancel, nothing more, nothing twice.
    expect(cli.stdout()).toBe(printed(turn!.answer));
    expect(cli.stderr()).toContain('stopped.');
  });

  it('quits at once on a second Ctrl+C even when the cancel does not go through', async () => {
    const proxy = await startTamperingProxy(server.url, { holdCancels: true });
    try {
      const cli = startCli(['ask', ...at(proxy.url), '--context', 'ask-quit', 'answer in 3000 tokens']);
      await cli.waitFor(({ stdout }) => stdout.length > 100, 'some tokens');
      cli.child.kill('SIGINT');
      await cli.waitFor(({ stderr }) => stderr.includes('Ctrl+C again to quit'), 'the stop note');
      cli.child.kill('SIGINT');
      expect(await cli.exited).toBe(130);
      await fetch(
        `${server.url}/api/v1/chat/turns/${(await getJson(`${server.url}/api/v1/conversations/ask-quit`)).body.turns[0].turn_id}/cancel`,
        { method: 'POST' },
      );
    } finally {
      await proxy.close();
    }
  });

  it('prints the error code and message of an error response on stderr and exits 1', async () => {
    const { code, stdout, stderr } = await runCli(['ask', ...at(), 'x'.repeat(10_001)]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^chatwait: VALIDATION_ERROR: .+ \[request [\w-]+\]\n$/);
  });

  it('exits 2 on wrong usage and 3 when the server cannot be reached', async () => {
    expect((await runCli(['ask', ...at(), '--context', 'not a valid id', 'hi'])).code).toBe(2);
    expect((await runCli(['ask', ...at(), '--nonsense', 'hi'])).code).toBe(2);
    expect((await runCli(['ask', '--url', 'ftp://example.com', 'hi'])).code).toBe(2);
    expect((await runCli(['ask', ...at()], { input: '' })).code).toBe(2);
    expect((await runCli(['unknown-command'])).code).toBe(2);
    expect((await runCli([])).code).toBe(2);
    const unreachable = await runCli(['ask', ...at(`http://127.0.0.1:${await closedPort()}`), 'hello']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('Cannot reach the server');
  });
});

/**
 * A stand-in server streaming a scripted turn with tool activity, which breaks the first connection
 * after the tool's result, as the contract allows tool events between tokens.
 */
async function startToolServer() {
  const turn = 'tool-turn';
  const events = [
    { token: 'The weather', token_index: 0, type: 'token' },
    { type: 'tool_call', call_id: 'c1', name: 'get_weather', arguments: '{"city":"Paris"}' },
    { type: 'tool_result', call_id: 'c1', output: '18 °C, sunny' },
    { token: ' is sunny.', token_index: 1, type: 'token' },
    { type: 'end', turn_id: turn, context_id: 'tools', final_output: 'The weather is sunny.', token_count: 2, finish_reason: 'stop' },
  ];
  const lastEventIds: (string | undefined)[] = [];
  const fake = http.createServer((request, response) => {
    const lastEventId = request.headers['last-event-id'] as string | undefined;
    lastEventIds.push(lastEventId);
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    const start = { type: 'start', context_id: 'tools', turn_id: turn, resumed: lastEventId !== undefined, model: 'fake' };
    response.write(`data: ${JSON.stringify(start)}\nid: ${lastEventId ?? `${turn}/start`}\n\n`);
    const from = lastEventId ? Number(lastEventId.split('/')[1]) + 1 : 0;
    for (let position = from; position < events.length; position++) {
      response.write(`data: ${JSON.stringify(events[position])}\nid: ${turn}/${position}\n\n`);
      if (!lastEventId && position === 2) return void setTimeout(() => response.destroy(), 20);
    }
    response.end();
  });
  await new Promise<void>((done) => fake.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`,
    lastEventIds,
    close: () => new Promise((done) => fake.close(done)),
  };
}

describe('chatwait ask with tool activity', () => {
  it('shows tool calls and results as step lines on stderr and resumes after them by position', async () => {
    const tools = await startToolServer();
    try {
      const { code, stdout, stderr } = await runCli(['ask', ...at(tools.url), 'weather in Paris?']);
      expect(code, stderr).toBe(0);
      expect(stdout).toBe('The weather is sunny.\n');
      expect(stderr).toContain('⚙ get_weather({"city":"Paris"})\n  ↳ 18 °C, sunny\n');
      expect(stderr).toContain('connection lost');
      expect(tools.lastEventIds).toEqual([undefined, 'tool-turn/2']);
      const json = await runCli(['ask', ...at(tools.url), '--json', 'weather in Paris?']);
      expect(
        json.stdout
          .trimEnd()
          .split('\n')
          .map((line) => JSON.parse(line).type),
      ).toEqual(['start', 'token', 'tool_call', 'tool_result', 'token', 'end']);
    } finally {
      await tools.close();
    }
  });
});
