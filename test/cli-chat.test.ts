import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTamperingProxy } from './support/cutting-proxy.js';
import { closedPort, pseudoTerminalAvailable, printed, runCli, startCli, startInTerminal, SGR } from './support/run-cli.js';
import { getJson, startTestServer, type TestServer } from './support/test-server.js';

// `chatwait chat` run for real, driven through piped stdin and, with util-linux `script`, a pseudo terminal.
const hasTerminal = pseudoTerminalAvailable();

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '300' });
});
afterAll(() => server.close());

interface StoredTurn {
  turn_id: string;
  user_message: string;
  answer: string;
  status: string;
}

async function storedTurns(contextId: string): Promise<StoredTurn[]> {
  return (await getJson(`${server.url}/api/v1/conversations/${contextId}`)).body?.turns ?? [];
}

describe('chatwait chat with piped input', () => {
  it('answers each line in turn, all in one conversation', async () => {
    const messages = ['piped chat one, 10 tokens', 'piped chat two, 20 tokens', 'piped chat three, 60 tokens'];
    const { code, stdout, stderr } = await runCli(['chat', '--url', server.url], { input: `${messages.join('\n')}\n` });
    expect(code, stderr).toBe(0);
    const listed = (await getJson(`${server.url}/api/v1/conversations?limit=100`)).body.conversations;
    const conversation = listed.find((candidate: { title: string }) => candidate.title === messages[0]);
    expect(conversation.turn_count).toBe(3);
    const turns = await storedTurns(conversation.context_id);
    expect(turns.map((turn) => turn.user_message)).toEqual(messages);
    expect(stdout).toBe(turns.map((turn) => printed(turn.answer)).join(''));
    expect(turns[2]!.answer).toContain('This conversation has 2 earlier messages');
    expect(stdout).not.toMatch(SGR);
  });

  it('stops an answer on Ctrl+C, goes on with the next message, and quits on Ctrl+C at the prompt', async () => {
    const cli = startCli(['chat', '--url', server.url, '--context', 'chat-sigint']);
    cli.child.stdin.write('a long answer, 3000 tokens\n');
    await cli.waitFor(({ stdout }) => stdout.length > 100, 'some tokens');
    cli.child.kill('SIGINT');
    await cli.waitFor(({ stdout }) => stdout.includes('[stopped]'), 'the stop');
    const [stopped] = await storedTurns('chat-sigint');
    expect(stopped!.status).toBe('cancelled');
    expect(cli.stdout()).toBe(`${printed(stopped!.answer)}[stopped]\n`);

    cli.child.stdin.write('after the stop, 60 tokens\n');
    await expect.poll(async () => (await storedTurns('chat-sigint'))[1]?.status, { timeout: 10_000 }).toBe('complete');
    const second = (await storedTurns('chat-sigint'))[1]!;
    await cli.waitFor(({ stdout }) => stdout.endsWith(printed(second.answer)), 'the second answer');
    expect(second.answer).toContain('the one before this was: *a long answer, 3000 tokens*');
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(0);
  });

  it('quits with 130 on a second Ctrl+C while a cancel hangs', async () => {
    const proxy = await startTamperingProxy(server.url, { holdCancels: true });
    try {
      const cli = startCli(['chat', '--url', proxy.url, '--context', 'chat-quit']);
      cli.child.stdin.write('a long answer, 3000 tokens\n');
      await cli.waitFor(({ stdout }) => stdout.length > 100, 'some tokens');
      cli.child.kill('SIGINT');
      await cli.waitFor(({ stderr }) => stderr.includes('Ctrl+C again to quit'), 'the stop note');
      cli.child.kill('SIGINT');
      expect(await cli.exited).toBe(130);
      const [turn] = await storedTurns('chat-quit');
      await fetch(`${server.url}/api/v1/chat/turns/${turn!.turn_id}/cancel`, { method: 'POST' });
    } finally {
      await proxy.close();
    }
  });

  it('resumes an answer whose connection drops, printing it once', async () => {
    const cli = startCli(['chat', '--url', server.url, '--context', 'chat-drop']);
    cli.child.stdin.write('answer in 500 tokens\n');
    await cli.waitFor(({ stdout }) => stdout.length > 300, 'some tokens');
    expect(server.dropStreams()).toBe(1);
    await expect.poll(async () => (await storedTurns('chat-drop'))[0]?.status, { timeout: 10_000 }).toBe('complete');
    const [turn] = await storedTurns('chat-drop');
    await cli.waitFor(({ stdout }) => stdout === printed(turn!.answer), 'the whole answer');
    expect(cli.stderr()).toContain('connection lost');
    cli.child.stdin.end();
    expect(await cli.exited).toBe(0);
  });

  it('exits 1 at the end when a piped message failed, and 3 when the server is not there', async () => {
    const failed = await runCli(['chat', '--url', server.url], { input: `${'x'.repeat(10_001)}\nfine, 20 tokens\n` });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('VALIDATION_ERROR');
    expect(failed.stdout).toContain('Hello from the ChatWait demo model');
    expect((await runCli(['chat', '--url', `http://127.0.0.1:${await closedPort()}`], { input: 'hello\n' })).code).toBe(3);
  });
});

/** Runs `chatwait chat` in a pseudo terminal through util-linux `script`. */
const startChatInTerminal = (args: string[], env: Record<string, string> = {}) => startInTerminal(['chat', ...args], env);

/** How many prompts the terminal shows. */
const prompts = (text: string) => text.split('› ').length - 1;

describe.skipIf(!hasTerminal)('chatwait chat in a terminal', () => {
  it('prompts, streams answers in colour, stops one with Ctrl+C and quits on Ctrl+D', async () => {
    const terminal = startChatInTerminal(['--url', server.url, '--context', 'chat-pty']);
    await terminal.waitFor((text) => text.includes('› '), 'the prompt');
    terminal.type('terminal one, 20 tokens\r');
    await expect.poll(async () => (await storedTurns('chat-pty'))[0]?.status, { timeout: 10_000 }).toBe('complete');
    const [first] = await storedTurns('chat-pty');
    await terminal.waitFor((text) => text.includes(first!.answer), 'the first answer');

    terminal.type('terminal two, 3000 tokens\r');
    await terminal.waitFor(
      (text) => text.includes('terminal two, 3000 tokens') && text.length - text.indexOf('terminal two, 3000 tokens') > 500,
      'the second answer',
    );
    terminal.type('\u0003');
    await terminal.waitFor((text) => text.includes('[stopped]'), 'the stop');
    const second = (await storedTurns('chat-pty'))[1]!;
    expect(second.status).toBe('cancelled');
    expect(terminal.text()).toContain(`${second.answer}\n`);
    await terminal.waitFor((text) => prompts(text) === 3, 'the prompt again');
    terminal.type('\u0004');
    expect(await terminal.exited).toBe(0);
    expect(terminal.text()).toMatch(SGR);
  });

  it('writes no colours with NO_COLOR, and quits on Ctrl+C at the prompt', async () => {
    const terminal = startChatInTerminal(['--url', server.url, '--context', 'chat-pty-plain'], { NO_COLOR: '1' });
    await terminal.waitFor((text) => text.includes('› '), 'the prompt');
    terminal.type('plain terminal, 10 tokens\r');
    await expect.poll(async () => (await storedTurns('chat-pty-plain'))[0]?.status, { timeout: 10_000 }).toBe('complete');
    await terminal.waitFor((text) => prompts(text) === 2 && text.includes('Hello from the ChatWait'), 'the answer and the prompt');
    terminal.type('\u0003');
    expect(await terminal.exited).toBe(0);
    expect(terminal.text()).not.toMatch(SGR);
  });
});
