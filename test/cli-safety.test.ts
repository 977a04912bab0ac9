import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoTerminalAvailable, runCli, startInTerminal } from './support/run-cli.js';

// What a hostile (or prompt-injected) server sends must not drive the user's terminal: escape
// sequences and control characters are removed on a terminal; piped, the answer stays exact.
const hasTerminal = pseudoTerminalAvailable();

const OSC52 = '\u001b]52;c;SGFja2VkIQ=='; // a clipboard write, ended by BEL below
const TURN = 'hostile-turn';
/** The answer in tokens: an OSC 52 split over two tokens, a screen clear, a CR, a C1 CSI. */
const TOKENS = ['Visible start. ', OSC52, '\u0007Cleared?\u001b[2J', '\rHidden by CR? ', '\u009b31mred\u001b[0m done\n'];
const ANSWER = TOKENS.join('');
/** The answer as a terminal must show it. */
const SHOWN = 'Visible start. Cleared?Hidden by CR? red done\n';
const RESYNCED = `Part one. ${OSC52}\u0007then \u001b[2Jthe rest\r\u009b1m.\n`;
const TITLE = `Title${OSC52}\u0007 \u001b[2Jend\r\u009b1m`;

function sse(response: http.ServerResponse, id: string, data: unknown): string {
  const text = JSON.stringify(data);
  response.write(`data: ${text}\nid: ${id}\n\n`);
  return text;
}

/** A stand-in ChatWait whose answers, tool steps, titles, model name and errors hold escape sequences. */
async function startHostileServer() {
  const sent: string[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const message = body ? ((JSON.parse(body) as { message?: string }).message ?? '') : '';
      const json = (status: number, data: unknown) =>
        response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(data));
      if (request.url === '/api/v1/config')
        return json(200, { model: { name: `evil\u001b]0;pwned\u0007model\u009b2J`, demo: false }, auth_required: false });
      if (request.url?.startsWith('/api/v1/conversations')) {
        return json(200, {
          conversations: [
            { context_id: 'c1', title: TITLE, created_at: '2025-01-01T00:00:00Z', updated_at: '2025-01-01T00:00:00Z', turn_count: 1 },
          ],
          next_cursor: null,
        });
      }
      if (request.url === '/api/v1/chat/wait') {
        if (message === 'fail') return json(400, { error_code: 'BAD\u001b[2J', message: `bad ${OSC52}\u0007 input\r`, request_id: 'r1' });
        return json(200, {
          message: ANSWER,
          finish_reason: 'stop',
          context_id: 'c1',
          token_count: 5,
          processing_time_ms: 1,
          turn_id: TURN,
          model: 'm',
        });
      }
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      const lastEventId = request.headers['last-event-id'];
      sent.length = 0;
      sent.push(
        sse(response, `${TURN}/start`, { type: 'start', context_id: 'c1', turn_id: TURN, resumed: lastEventId !== undefined, model: 'm' }),
      );
      if (message.startsWith('resync')) {
        if (!lastEventId) {
          sse(response, `${TURN}/0`, { type: 'token', token: 'Part one. ', token_index: 0 });
          return void setTimeout(() => response.destroy(), 20);
        }
        sse(response, `${TURN}/resync`, { type: 'resync', turn_id: TURN, final_output: RESYNCED, token_count: 3 });
        sse(response, `${TURN}/9`, {
          type: 'end',
          context_id: 'c1',
          turn_id: TURN,
          final_output: RESYNCED,
          token_count: 3,
          finish_reason: 'stop',
          model: 'm',
        });
        return void response.end();
      }
      let position = 0;
      const steps: unknown[] = TOKENS.map((token, index) => ({ type: 'token', token, token_index: index }));
      // The tool steps come first: on a terminal, a step line between tokens would break the answer's line.
      steps.splice(0, 0, {
        type: 'tool_call',
        call_id: 'k',
        name: 'get\u001b]0;pwned\u0007_weather',
        arguments: '{"city":"\u001b[35mParis"}',
      });
      steps.splice(1, 0, { type: 'tool_result', call_id: 'k', output: '18 \u009b2J°C\r, sunny' });
      steps.push({
        type: 'end',
        context_id: 'c1\u001b[2J',
        turn_id: TURN,
        final_output: ANSWER,
        token_count: TOKENS.length,
        finish_reason: 'stop',
        model: 'm',
      });
      for (const step of steps) sent.push(sse(response, `${TURN}/${position++}`, step));
      response.end();
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, sent, close: () => new Promise((done) => server.close(done)) };
}

let hostile: Awaited<ReturnType<typeof startHostileServer>>;
beforeAll(async () => {
  hostile = await startHostileServer();
});
afterAll(() => hostile.close());

/** Our own colours (see terminal.ts), the only escape sequences the client may write. */
// eslint-disable-next-line no-control-regex
const OUR_STYLES = /\u001b\[(?:1|2|22|31|32|33|36|39)m/g;

/** What readline writes around the prompt of `chat`: cursor to a column, clear to the end. */
// eslint-disable-next-line no-control-regex
const READLINE = /\u001b\[(?:\d+G|0J)/g;

/** Checks that a terminal's output holds no control character but our colours (and readline's), newlines and tabs. */
function expectNoControls(output: string) {
  const rest = output.replaceAll('\r\n', '\n').replace(OUR_STYLES, '').replace(READLINE, '');
  // eslint-disable-next-line no-control-regex
  expect(rest.match(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g), JSON.stringify(rest)).toBeNull();
}

describe.skipIf(!hasTerminal)('server text on a terminal', () => {
  it('ask shows the answer, tool steps and notes without escape sequences, in our colours', async () => {
    const terminal = startInTerminal(['ask', '--url', hostile.url, 'weather?']);
    expect(await terminal.exited).toBe(0);
    const output = terminal.text();
    expectNoControls(output);
    expect(output.replace(OUR_STYLES, '')).toContain(SHOWN);
    expect(output).toMatch(OUR_STYLES);
    expect(output).toContain('⚙ get_weather({"city":"Paris"})');
    expect(output).toContain('↳ 18 °C, sunny');
    expect(output).toContain('(conversation c1: continue with --context c1)');
  });

  it('ask --wait, a resync, conversations and error messages are cleaned too', async () => {
    const wait = startInTerminal(['ask', '--wait', '--url', hostile.url, 'weather?']);
    expect(await wait.exited).toBe(0);
    expectNoControls(wait.text());
    expect(wait.text()).toContain(SHOWN);

    const resync = startInTerminal(['ask', '--url', hostile.url, 'resync please']);
    expect(await resync.exited).toBe(0);
    expectNoControls(resync.text());
    // On a terminal the reconnect note comes between the token before the cut and the resync.
    expect(resync.text()).toContain('Part one. ');
    expect(resync.text().replace(OUR_STYLES, '')).toMatch(/connection lost .*\nthen the rest\.\n/);

    const list = startInTerminal(['conversations', '--url', hostile.url]);
    expect(await list.exited).toBe(0);
    expectNoControls(list.text());
    expect(list.text()).toContain('Title end');

    const failed = startInTerminal(['ask', '--wait', '--url', hostile.url, 'fail']);
    expect(await failed.exited).toBe(1);
    expectNoControls(failed.text());
    expect(failed.text().replace(OUR_STYLES, '')).toContain('chatwait: BAD: bad input [request r1]');
  });

  it('ask --json stays the same JSON, with C1 characters escaped', async () => {
    const terminal = startInTerminal(['ask', '--json', '--url', hostile.url, 'weather?']);
    expect(await terminal.exited).toBe(0);
    expectNoControls(terminal.text());
    // The JSON lines, then the note on stderr (on the same terminal).
    const lines = terminal.text().split('\n');
    const events = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
    expect(events.map((event) => JSON.stringify(event))).toEqual(hostile.sent);
    expect(terminal.text()).toContain('"\\u009b31mred');
  });

  it('chat shows the model name and the answer without escape sequences', async () => {
    const terminal = startInTerminal(['chat', '--url', hostile.url]);
    await terminal.waitFor((text) => text.includes('› '), 'the prompt');
    terminal.type('weather?\r');
    await terminal.waitFor((text) => text.split('› ').length === 3, 'the answer and the next prompt');
    terminal.type('\u0004');
    expect(await terminal.exited).toBe(0);
    expectNoControls(terminal.text());
    expect(terminal.text()).toContain('model evilmodel ·');
    expect(terminal.text().replace(OUR_STYLES, '')).toContain(SHOWN);
  });
});

describe('server text through a pipe', () => {
  it('ask writes the answer byte-exact, and the step lines on stderr cleaned', async () => {
    const { code, stdout, stderr } = await runCli(['ask', '--url', hostile.url, 'weather?']);
    expect(code, stderr).toBe(0);
    expect(stdout).toBe(ANSWER);
    expectNoControls(stderr);
    expect(stderr).toContain('⚙ get_weather({"city":"Paris"})\n  ↳ 18 °C, sunny\n');
    expect((await runCli(['ask', '--wait', '--url', hostile.url, 'weather?'])).stdout).toBe(ANSWER);
    expect((await runCli(['ask', '--url', hostile.url, 'resync please'])).stdout).toBe(RESYNCED);
  });

  it('--json is byte-exact, and one-line fields (titles, errors) are always cleaned', async () => {
    const json = await runCli(['ask', '--json', '--url', hostile.url, 'weather?']);
    expect(json.stdout).toBe(`${hostile.sent.join('\n')}\n`);
    const list = await runCli(['conversations', '--url', hostile.url]);
    expect(list.stdout).toMatch(/^c1 +\d{4}-\d\d-\d\d \d\d:\d\d +1 turn +Title end\n$/);
    expect(JSON.parse((await runCli(['conversations', '--json', '--url', hostile.url])).stdout).conversations[0].title).toBe(TITLE);
    const failed = await runCli(['ask', '--wait', '--url', hostile.url, 'fail']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe('chatwait: BAD: bad input [request r1]\n');
  });
});

describe('credentials in messages', () => {
  it('never shows the password of a --url or CHATWAIT_URL with user:password@', async () => {
    const port = new URL(hostile.url).port;
    for (const run of [
      await runCli(['ask', '--url', `http://user:s3cret-pw@127.0.0.1:${port}`, 'hi']),
      await runCli(['health'], { env: { CHATWAIT_URL: `http://user:s3cret-pw@127.0.0.1:${port}/` } }),
      await runCli(['conversations', '--url', `http://user:s3cret-pw@[::1`]),
      await runCli(['smoke', '--url', `user:s3cret-pw@127.0.0.1:${port}`]),
    ]) {
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toContain('***@');
      expect(`${run.stdout}${run.stderr}`).not.toContain('s3cret-pw');
    }
  });

  it('never shows the API key, even one that cannot be sent', async () => {
    const run = await runCli(['ask', '--url', hostile.url, '--api-key', 'line-one\ns3cret-key', 'hi']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('the key is not shown');
    expect(`${run.stdout}${run.stderr}`).not.toContain('s3cret-key');
  });
});
