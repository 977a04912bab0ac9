import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tool, UserError } from '@openai/agents-core';
import { ConfigError } from '../../config.js';
import type { ChatTool } from './chat-tool.js';
import { ToolFailure } from './chat-tool.js';

/** Tool names as the chat-completions API accepts them. */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** What a plugin module exports by default (see the README's "Tools" section). */
export interface ToolPlugin {
  name: string;
  description: string;
  /** A JSON Schema of `type: "object"`, or a zod object schema. */
  parameters: unknown;
  execute(args: unknown, context: { signal: AbortSignal | undefined }): unknown;
}

/**
 * Loads every `.js`/`.mjs` module of `directory` (names starting with `_` or `.` are helpers and
 * skipped), in name order, each exporting one tool by default: a plain `{ name, description,
 * parameters, execute }` object, or a tool made with the Agents SDK's `tool()`. Anything wrong
 * (the folder, a syntax error, a throw on import, a wrong shape, a taken name) is a ConfigError
 * whose one-line message names the file.
 */
export async function loadToolPlugins(directory: string, takenNames: ReadonlySet<string>): Promise<ChatTool[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch {
    throw new ConfigError(`Invalid configuration: TOOLS_DIR must name a readable folder (got ${JSON.stringify(directory)})`);
  }
  const files = entries
    .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && /\.m?js$/.test(entry.name) && !/^[_.]/.test(entry.name))
    .map((entry) => entry.name)
    .sort();
  const names = new Set(takenNames);
  const tools: ChatTool[] = [];
  for (const file of files) {
    const path = join(directory, file);
    // Symbolic links count by what they point to: a Kubernetes ConfigMap mounts every file as one.
    if (!(await isFile(path))) continue;
    const loaded = toChatTool(await importPlugin(path), path);
    if (names.has(loaded.name)) throw pluginError(path, `its name "${loaded.name}" is already taken by another tool`);
    names.add(loaded.name);
    tools.push(loaded);
  }
  return tools;
}

/** Whether a path is a file, following links; a link to nothing is a mistake worth stopping for. */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (error) {
    throw pluginError(path, `it cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}; a symbolic link to nothing?)`);
  }
}

async function importPlugin(path: string): Promise<unknown> {
  try {
    const module = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown };
    return module.default;
  } catch (error) {
    const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    throw pluginError(path, `it failed to load (${firstLine(reason)})`);
  }
}

function toChatTool(candidate: unknown, path: string): ChatTool {
  if (typeof candidate !== 'object' || candidate === null) {
    throw pluginError(path, 'it must `export default { name, description, parameters, execute }`');
  }
  const plugin = candidate as Partial<ToolPlugin> & { type?: unknown; invoke?: unknown };
  if (typeof plugin.name !== 'string' || !TOOL_NAME_PATTERN.test(plugin.name)) {
    throw pluginError(path, 'its name must be 1 to 64 characters from A-Z, a-z, 0-9, _ and -');
  }
  if (typeof plugin.description !== 'string' || plugin.description.trim() === '')
    throw pluginError(path, 'it needs a description (a non-empty string)');
  // A tool already made with the SDK's tool(): its schema was checked when it was made.
  if (plugin.type === 'function' && typeof plugin.invoke === 'function') return candidate as ChatTool;
  if (typeof plugin.execute !== 'function') throw pluginError(path, 'execute must be a function (args, { signal }) => result');
  const parameters = plugin.parameters;
  const execute = plugin.execute.bind(plugin);
  if (isZodObject(parameters)) {
    try {
      return tool({
        name: plugin.name,
        description: plugin.description,
        parameters: parameters as never,
        errorFunction: null,
        execute: (args: unknown, _context?: unknown, details?: { signal?: AbortSignal }) => execute(args, { signal: details?.signal }),
      });
    } catch (error) {
      throw pluginError(path, `its zod parameters cannot be used (${firstLine(error instanceof Error ? error.message : String(error))})`);
    }
  }
  if (!isObjectSchema(parameters))
    throw pluginError(path, 'parameters must be a JSON Schema with "type": "object", or a zod object schema');
  const make = (strict: boolean) =>
    tool({
      name: plugin.name!,
      description: plugin.description!,
      parameters: parameters as never,
      strict,
      errorFunction: null,
      execute: (args: unknown, _context?: unknown, details?: { signal?: AbortSignal }) =>
        execute(checkArguments(args, parameters), { signal: details?.signal }),
    });
  try {
    if (isStrictSchema(parameters)) {
      try {
        return make(true);
      } catch (error) {
        // Strict mode refuses some keywords anywhere in the schema (oneOf, allOf, if/then, not…). Such a
        // schema goes to the model as written, non-strict, as every schema with optional properties does.
        if (!(error instanceof UserError)) throw error;
      }
    }
    return make(false);
  } catch (error) {
    throw pluginError(path, `its parameters cannot be used (${firstLine(error instanceof Error ? error.message : String(error))})`);
  }
}

interface ObjectSchema {
  type: 'object';
  properties?: Record<string, { type?: unknown }>;
  required?: string[];
  additionalProperties?: unknown;
}

function isZodObject(value: unknown): boolean {
  const definition =
    (value as { _zod?: { def?: { type?: unknown } }; _def?: { typeName?: unknown } } | null)?._zod?.def ??
    (value as { _def?: object } | null)?._def;
  return (
    typeof value === 'object' &&
    value !== null &&
    definition !== undefined &&
    ((definition as { type?: unknown }).type === 'object' || (definition as { typeName?: unknown }).typeName === 'ZodObject')
  );
}

function isObjectSchema(value: unknown): value is ObjectSchema {
  if (typeof value !== 'object' || value === null || (value as { type?: unknown }).type !== 'object') return false;
  const { properties, required } = value as { properties?: unknown; required?: unknown };
  return (
    (properties === undefined || (typeof properties === 'object' && properties !== null)) &&
    (required === undefined || (Array.isArray(required) && required.every((item) => typeof item === 'string')))
  );
}

/**
 * OpenAI's strict mode needs every property required and no others allowed; other schemas go
 * non-strict (and so do those whose keywords the SDK cannot convert to strict mode).
 */
function isStrictSchema(schema: ObjectSchema): boolean {
  const keys = Object.keys(schema.properties ?? {});
  return schema.additionalProperties === false && keys.every((key) => schema.required?.includes(key));
}

/** The SDK only parses JSON for a JSON-Schema tool: check what a model most often gets wrong (missing or mistyped fields). */
function checkArguments(args: unknown, schema: ObjectSchema): unknown {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new ToolFailure('the arguments must be a JSON object');
  // JSON holds no functions: one here is the SDK's strict-mode normalizer copying an inherited
  // property (a missing "toString" argument becomes Object.prototype.toString), so it is dropped.
  const record = Object.fromEntries(Object.entries(args).filter(([, value]) => typeof value !== 'function'));
  for (const key of schema.required ?? []) {
    // Own properties only: "toString" or "constructor" are in every object's prototype.
    if (!Object.hasOwn(record, key)) throw new ToolFailure(`the argument "${key}" is missing`);
  }
  for (const [key, value] of Object.entries(record)) {
    const expected = schema.properties?.[key]?.type;
    if (typeof expected === 'string' && !hasJsonType(value, expected))
      throw new ToolFailure(`the argument "${key}" must be of type ${expected}`);
  }
  return record;
}

function hasJsonType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'null':
      return value === null;
    default:
      return true;
  }
}

function pluginError(path: string, problem: string): ConfigError {
  return new ConfigError(`Invalid tool plugin ${path}: ${problem}`);
}

function firstLine(text: string): string {
  const line = text.split('\n').find((part) => part.trim() !== '') ?? text;
  return line.trim().slice(0, 300);
}
