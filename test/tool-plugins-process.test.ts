import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './support/fake-openai-server.js';
import { readSse } from './support/sse-client.js';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { chatRequests, shapeOf } from './support/tool-stream.js';

const servers: SpawnedServer[] = [];
const start = (env: Record<string, string>) => {
  const server = spawnServer(env);
  servers.push(server);
  return server;
};
afterEach(() => {
  for (const server of servers.splice(0)) server.child.kill('SIGKILL');
});

function pluginFolder(files: Record<string, string>): string {
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-tools-dir-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(directory, name), text);
  return directory;
}

describe('the compiled server with tool plugins', () => {
  it('refuses to start on a plugin with a syntax error, with one line naming the file', async () => {
    const directory = pluginFolder({
      'a-good.mjs': 'export default { name: "fine", description: "d", parameters: { type: "object" }, execute: () => 1 };',
      'b-broken.mjs': 'export default {',
    });
    const server = start({ TOOLS_DIR: directory });
    expect(await server.exited).toBe(1);
    const stderr = server.output().stderr.trim();
    expect(stderr).toMatch(
      new RegExp(`^Invalid tool plugin ${join(directory, 'b-broken.mjs')}: it failed to load \\(SyntaxError: [^\\n]+\\)$`),
    );
  });

  it('refuses to start on a plugin that throws when imported', async () => {
    const directory = pluginFolder({ 'needs-key.js': 'throw new Error("WEATHER_API_KEY is not set");\n' });
    const server = start({ TOOLS_DIR: directory });
    expect(await server.exited).toBe(1);
    expect(server.output().stderr.trim()).toBe(
      `Invalid tool plugin ${join(directory, 'needs-key.js')}: it failed to load (Error: WEATHER_API_KEY is not set)`,
    );
  });

  it('refuses to start on an unknown TOOLS name', async () => {
    const server = start({ TOOLS: 'calculate,weather' });
    expect(await server.exited).toBe(1);
    expect(server.output().stderr.trim()).toBe(
      'Invalid configuration: TOOLS must be none or a comma-separated list of get_current_time, calculate, convert_units (got "calculate,weather")',
    );
  });

  it('starts with a plugin whose schema strict mode cannot take (oneOf), and offers it non-strict', async () => {
    const fake = await startFakeOpenAI();
    try {
      const parameters = {
        type: 'object',
        properties: { id: { oneOf: [{ type: 'string' }, { type: 'integer' }] } },
        required: ['id'],
        additionalProperties: false,
      };
      const directory = pluginFolder({
        'lookup.mjs': `export default { name: "lookup", description: "d", parameters: ${JSON.stringify(parameters)}, execute: ({ id }) => "found " + id };`,
      });
      const server = start({ TOOLS_DIR: directory, TOOLS: 'none', OPENAI_BASE_URL: fake.baseUrl });
      const url = await server.url;
      fake.enqueue(
        { kind: 'tool_calls', calls: [{ id: 'call_l', name: 'lookup', arguments: ['{"id": 7}'] }] },
        { kind: 'stream', tokens: ['Found it.'] },
      );
      const result = await readSse(`${url}/api/v1/chat/streaming?message=look%20it%20up`);
      expect(result.events[2]!.json).toMatchObject({ type: 'tool_result', output: 'found 7', is_error: false });
      expect(chatRequests(fake)[0]!.body.tools).toEqual([{ type: 'function', function: { name: 'lookup', description: 'd', parameters } }]);
    } finally {
      await fake.close();
    }
  });

  it('offers the README example plugin to the model and runs it when called', async () => {
    const fake = await startFakeOpenAI();
    try {
      const server = start({
        TOOLS_DIR: resolve(import.meta.dirname, '../examples/tools'),
        OPENAI_BASE_URL: fake.baseUrl,
        TOOLS: 'calculate',
      });
      const url = await server.url;
      fake.enqueue(
        { kind: 'tool_calls', calls: [{ id: 'call_wc', name: 'word_count', arguments: ['{"text": "Tools are ', 'plugins. Nice!"}'] }] },
        { kind: 'stream', tokens: ['Four words.'] },
      );
      const result = await readSse(`${url}/api/v1/chat/streaming?message=count%20them`);
      expect(shapeOf(result.events)).toEqual(['tool_call:call_wc', 'tool_result:call_wc', 'token', 'end']);
      expect(result.events[2]!.json).toMatchObject({ output: '{"words":4,"sentences":2,"characters":24}', is_error: false });
      const offered = chatRequests(fake)[0]!.body.tools!;
      expect(offered.map((tool) => tool.function.name)).toEqual(['calculate', 'word_count']);
      expect(offered[1]!.function).toMatchObject({
        strict: true,
        parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
      });
      expect(chatRequests(fake)[1]!.body.messages!.at(-1)).toEqual({
        role: 'tool',
        tool_call_id: 'call_wc',
        content: '{"words":4,"sentences":2,"characters":24}',
      });
    } finally {
      await fake.close();
    }
  });
});
