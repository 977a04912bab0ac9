import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config.js';
import type { ChatTool } from './chat-tool.js';
import { loadToolPlugins } from './tool-plugins.js';
import { runToolCall } from './tool-runner.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const signal = new AbortController().signal;

async function run(tools: ChatTool[], name: string, args: unknown) {
  return runToolCall(
    new Map(tools.map((tool) => [tool.name, tool])),
    { callId: 'c1', name, arguments: JSON.stringify(args) },
    { timeoutMs: 1000, signal },
  );
}

/** A folder holding one plugin file with this text. */
function folderWith(file: string, text: string): { directory: string; path: string } {
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-plugins-'));
  writeFileSync(join(directory, file), text);
  return { directory, path: join(directory, file) };
}

describe('tool plugins', () => {
  it('load the README example (examples/tools) and run it', async () => {
    const tools = await loadToolPlugins(join(ROOT, 'examples/tools'), new Set());
    expect(tools.map((tool) => tool.name)).toEqual(['word_count']);
    expect(tools[0]!.parameters).toMatchObject({ type: 'object', required: ['text'] });
    expect(tools[0]!.strict).toBe(true);
    await expect(run(tools, 'word_count', { text: 'One two three. Four!' })).resolves.toMatchObject({
      output: '{"words":4,"sentences":2,"characters":20}',
      isError: false,
    });
    await expect(run(tools, 'word_count', {})).resolves.toMatchObject({ output: 'Error: the argument "text" is missing', isError: true });
    await expect(run(tools, 'word_count', { text: 42 })).resolves.toMatchObject({
      output: 'Error: the argument "text" must be of type string',
      isError: true,
    });
  });

  it('are documented in the README with the very example that loads here', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = readFileSync(join(ROOT, 'examples/tools/word-count.mjs'), 'utf8');
    expect(readme).toContain('This one is `examples/tools/word-count.mjs`:');
    expect(readme).toContain(`\`\`\`js\n${example}\`\`\``);
  });

  it('take zod parameters, validated by the SDK, and skip helper files starting with _', async () => {
    const tools = await loadToolPlugins(join(ROOT, 'test/fixtures/tool-plugins/zod'), new Set());
    expect(tools.map((tool) => tool.name)).toEqual(['repeat_text']);
    await expect(run(tools, 'repeat_text', { text: 'hi', times: 3 })).resolves.toMatchObject({ output: 'hi hi hi', isError: false });
    const invalid = await run(tools, 'repeat_text', { text: 'hi', times: 9 });
    expect(invalid.isError).toBe(true);
    expect(invalid.output).toMatch(/^Error: the arguments do not match the parameters of repeat_text/);
  });

  it.each([
    [
      'a syntax error',
      'export default { name: "x", description: "y", parameters: {type: "object"}, execute() { return 1 }',
      /it failed to load \(.*(SyntaxError|invalid JS syntax)/,
    ],
    [
      'a throw on import',
      'throw new Error("no API token configured");\nexport default {};',
      /it failed to load \(Error: no API token configured\)$/,
    ],
    ['no default export', 'export const tool = {};', /it must `export default \{ name, description, parameters, execute \}`$/],
    [
      'a bad name',
      'export default { name: "has spaces", description: "d", parameters: { type: "object" }, execute: () => 1 };',
      /its name must be 1 to 64 characters/,
    ],
    [
      'no description',
      'export default { name: "nodesc", description: " ", parameters: { type: "object" }, execute: () => 1 };',
      /it needs a description/,
    ],
    ['no execute', 'export default { name: "noexec", description: "d", parameters: { type: "object" } };', /execute must be a function/],
    [
      'a schema the SDK cannot use',
      'export default { name: "odd", description: "d", parameters: { type: "object", "~standard": { version: 1 } }, execute: () => 1 };',
      /its parameters cannot be used \(Standard Schema values must provide/,
    ],
    [
      'a schema that is not an object schema',
      'export default { name: "badschema", description: "d", parameters: { type: "string" }, execute: () => 1 };',
      /parameters must be a JSON Schema with "type": "object"/,
    ],
  ])('stop start-up on %s, with one line naming the file', async (_case, text, problem) => {
    const { directory, path } = folderWith('broken.mjs', text);
    const loading = loadToolPlugins(directory, new Set());
    await expect(loading).rejects.toBeInstanceOf(ConfigError);
    const message = await loading.then(
      () => '',
      (error: Error) => error.message,
    );
    expect(message.startsWith(`Invalid tool plugin ${path}: `)).toBe(true);
    expect(message).toMatch(problem);
    expect(message).not.toContain('\n');
  });

  it.each([
    ['oneOf', { oneOf: [{ type: 'string' }, { type: 'number' }] }],
    ['allOf', { allOf: [{ type: 'string' }, { minLength: 1 }] }],
    ['if/then', { type: 'string', if: { const: 'a' }, then: { minLength: 1 } }],
  ])('send a schema using %s, which strict mode cannot take, non-strict as written', async (_keyword, valueSchema) => {
    const parameters = { type: 'object', properties: { value: valueSchema }, required: ['value'], additionalProperties: false };
    const { directory } = folderWith(
      'either.mjs',
      `export default { name: "either", description: "d", parameters: ${JSON.stringify(parameters)}, execute: ({ value }) => "got " + value };`,
    );
    const tools = await loadToolPlugins(directory, new Set());
    expect(tools[0]!.strict).toBe(false);
    expect(tools[0]!.parameters).toEqual(parameters);
    await expect(run(tools, 'either', { value: 'a' })).resolves.toMatchObject({ output: 'got a', isError: false });
    await expect(run(tools, 'either', {})).resolves.toMatchObject({ output: 'Error: the argument "value" is missing', isError: true });
  });

  it('follow symbolic links, as a Kubernetes ConfigMap mounts its files', async () => {
    // A ConfigMap volume: each file is a link into ..data, itself a link to a timestamped folder.
    const directory = mkdtempSync(join(tmpdir(), 'chatwait-configmap-'));
    mkdirSync(join(directory, '..2024_06_01_12_00_00.123'));
    writeFileSync(
      join(directory, '..2024_06_01_12_00_00.123', 'word-count.mjs'),
      readFileSync(join(ROOT, 'examples/tools/word-count.mjs')),
    );
    symlinkSync('..2024_06_01_12_00_00.123', join(directory, '..data'));
    symlinkSync('..data/word-count.mjs', join(directory, 'word-count.mjs'));
    symlinkSync('..data', join(directory, 'linked-folder.mjs'));
    const tools = await loadToolPlugins(directory, new Set());
    expect(tools.map((tool) => tool.name)).toEqual(['word_count']);
    await expect(run(tools, 'word_count', { text: 'linked in' })).resolves.toMatchObject({
      output: '{"words":2,"sentences":0,"characters":9}',
    });
  });

  it('stop start-up on a symbolic link to nothing, naming it', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'chatwait-dangling-'));
    symlinkSync('missing.mjs', join(directory, 'gone.mjs'));
    await expect(loadToolPlugins(directory, new Set())).rejects.toThrow(
      `Invalid tool plugin ${join(directory, 'gone.mjs')}: it cannot be read (ENOENT; a symbolic link to nothing?)`,
    );
  });

  it.each([
    ['strict', { additionalProperties: false }],
    ['non-strict', {}],
  ])('count only own properties as present arguments ("toString" is no exception), %s', async (mode, extra) => {
    const parameters = { type: 'object', properties: { toString: { type: 'string' } }, required: ['toString'], ...extra };
    const { directory } = folderWith(
      'named.mjs',
      `export default { name: "named", description: "d", parameters: ${JSON.stringify(parameters)}, execute: (args) => "ran with " + JSON.stringify(args) };`,
    );
    const tools = await loadToolPlugins(directory, new Set());
    expect(tools[0]!.strict).toBe(mode === 'strict');
    await expect(run(tools, 'named', {})).resolves.toMatchObject({ output: 'Error: the argument "toString" is missing', isError: true });
    await expect(run(tools, 'named', { toString: 'x' })).resolves.toMatchObject({ output: 'ran with {"toString":"x"}', isError: false });
  });

  it('refuse a name another tool already has', async () => {
    const { directory, path } = folderWith(
      'calc.mjs',
      'export default { name: "calculate", description: "d", parameters: { type: "object" }, execute: () => 1 };',
    );
    await expect(loadToolPlugins(directory, new Set(['calculate']))).rejects.toThrow(
      `Invalid tool plugin ${path}: its name "calculate" is already taken by another tool`,
    );
  });

  it('need TOOLS_DIR to be a folder', async () => {
    await expect(loadToolPlugins('/nonexistent/tools', new Set())).rejects.toThrow(
      'Invalid configuration: TOOLS_DIR must name a readable folder (got "/nonexistent/tools")',
    );
  });
});
