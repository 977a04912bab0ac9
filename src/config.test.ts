import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig, resolveProvider } from './config.js';

const load = (environment: Record<string, string>) => loadConfig(environment, undefined);

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = load({});
    expect(config).toMatchObject({
      HOST: 'localhost',
      PORT: 8000,
      DEBUG: false,
      LLM_PROVIDER: 'auto',
      GEMINI_MODEL: 'gemini-2.5-flash',
      RESPONSE_TIMEOUT_SECONDS: 30,
      RATE_LIMIT_REQUESTS_PER_MINUTE: 60,
      RATE_LIMIT_BURST: 10,
      STREAM_TTL_SECONDS: 300,
      REPLAY_LOG_MAX_BYTES: 64 * 1_048_576,
      MAX_GENERATING_TURNS_PER_CLIENT: 3,
      MAX_OUTPUT_TOKENS: 8192,
      SSE_HEARTBEAT_SECONDS: 15,
      DEMO_TOKENS_PER_SECOND: 40,
      DEMO_RESPONSE_TOKENS: 60,
      DEFAULT_CHAT_MODE: 'streaming',
      SHOW_MODE_SELECTOR: true,
      DATABASE_URL: 'sqlite:./data/chatwait.db',
      REDIS_WRITE_WINDOW_MS: 25,
      API_KEYS: [],
      ALLOWED_ORIGINS: [],
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('parses numbers, booleans, enums and lists', () => {
    const config = load({
      PORT: '9000',
      DEBUG: 'yes',
      SHOW_MODE_SELECTOR: 'off',
      DEFAULT_CHAT_MODE: 'WAIT',
      RESPONSE_TIMEOUT_SECONDS: '2.5',
      API_KEYS: 'key-one-123, key-two-456',
      ALLOWED_ORIGINS: 'https://a.example,http://localhost:5173',
    });
    expect(config).toMatchObject({
      PORT: 9000,
      DEBUG: true,
      SHOW_MODE_SELECTOR: false,
      DEFAULT_CHAT_MODE: 'wait',
      RESPONSE_TIMEOUT_SECONDS: 2.5,
    });
    expect(config.API_KEYS).toEqual(['key-one-123', 'key-two-456']);
    expect(config.ALLOWED_ORIGINS).toEqual(['https://a.example', 'http://localhost:5173']);
  });

  it('reads ALLOWED_ORIGINS as the original project wrote it (a JSON list), and ALLOWED_HOSTS', () => {
    const config = load({
      ALLOWED_ORIGINS: '["http://localhost:3000","http://localhost:8000"]',
      ALLOWED_HOSTS: 'Chat.Example.com., *.example.org,[::1]',
    });
    expect(config.ALLOWED_ORIGINS).toEqual(['http://localhost:3000', 'http://localhost:8000']);
    expect(config.ALLOWED_HOSTS).toEqual(['chat.example.com', '*.example.org', '[::1]']);
    // Origins are compared as browsers send them: no trailing slash, no default port, lower case.
    expect(load({ ALLOWED_ORIGINS: 'https://Chat.Example.com:443/, http://localhost:3000/' }).ALLOWED_ORIGINS).toEqual([
      'https://chat.example.com',
      'http://localhost:3000',
    ]);
    expect(load({ ALLOWED_ORIGINS: '[ "*" ]' }).ALLOWED_ORIGINS).toEqual(['*']);
    expect(load({}).ALLOWED_HOSTS).toEqual([]);
    for (const bad of ['["http://localhost:3000", 3000]', '["http://localhost:3000"', '[]x', 'localhost:3000', 'http://a.example/path']) {
      expect(() => load({ ALLOWED_ORIGINS: bad }), bad).toThrow(
        /^Invalid configuration: ALLOWED_ORIGINS must be a comma-separated list of origins/,
      );
    }
    expect(() => load({ ALLOWED_HOSTS: 'chat.example.com:8000' })).toThrow(
      /^Invalid configuration: ALLOWED_HOSTS must be a comma-separated list of host names/,
    );
  });

  it('reads TRUST_PROXY as a flag, a hop count or a list of IPv4 and IPv6 addresses and subnets', () => {
    expect(load({ TRUST_PROXY: 'true' }).TRUST_PROXY).toBe(true);
    expect(load({ TRUST_PROXY: '2' }).TRUST_PROXY).toBe(2);
    // One hop is not `true`: `true` would take the client's own (forgeable) first X-Forwarded-For entry.
    expect(load({ TRUST_PROXY: '1' }).TRUST_PROXY).toBe(1);
    expect(load({ TRUST_PROXY: '0' }).TRUST_PROXY).toBe(false);
    expect(load({ TRUST_PROXY: '::ffff:10.0.0.1, 10.0.0.0/8, fd00::/8, ::1' }).TRUST_PROXY).toEqual([
      '::ffff:10.0.0.1',
      '10.0.0.0/8',
      'fd00::/8',
      '::1',
    ]);
  });

  it('treats empty values as unset', () => {
    const config = load({ PORT: '', GEMINI_API_KEY: '  ' });
    expect(config.PORT).toBe(8000);
    expect(config.GEMINI_API_KEY).toBeUndefined();
    expect(resolveProvider(config)).toBe('demo');
  });

  it('takes redis:// and rediss:// URLs with a host, and a write window', () => {
    expect(load({ REDIS_URL: 'redis://localhost:6379' }).REDIS_URL).toBe('redis://localhost:6379');
    expect(load({ REDIS_URL: 'rediss://user:secret@cache.example.com:6380/2', REDIS_WRITE_WINDOW_MS: '0' })).toMatchObject({
      REDIS_URL: 'rediss://user:secret@cache.example.com:6380/2',
      REDIS_WRITE_WINDOW_MS: 0,
    });
    expect(load({}).REDIS_URL).toBeUndefined();
  });

  it.each([
    ['PORT', 'abc', /^Invalid configuration: PORT must be an integer from 0 to 65535 \(got "abc"\)$/],
    ['PORT', '70000', /PORT must be an integer/],
    ['DEBUG', 'maybe', /DEBUG must be true or false/],
    ['LLM_PROVIDER', 'claude', /LLM_PROVIDER must be one of auto, gemini, openai, demo/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['OPENAI_BASE_URL', 'localhost:11434', /OPENAI_BASE_URL must be an http\(s\) URL/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL must be memory, sqlite:<path> or postgres/],
    ['REDIS_URL', 'http://x', /REDIS_URL must be a redis:\/\//],
    [
      'INSTANCE_TIMEOUT_SECONDS',
      '9',
      /INSTANCE_TIMEOUT_SECONDS must be a number from 10 to 3600 \(heartbeats are written every third of it/,
    ],
    ['REDIS_URL', 'redis://', /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL with a host/],
    ['REDIS_URL', 'redis://cache:6379/not-a-number', /REDIS_URL must be a redis:\/\//],
    ['REDIS_WRITE_WINDOW_MS', '-1', /REDIS_WRITE_WINDOW_MS must be an integer from 0 to 1000/],
    ['DEFAULT_CHAT_MODE', 'fast', /DEFAULT_CHAT_MODE must be one of wait, streaming/],
    ['RESPONSE_TIMEOUT_SECONDS', '0', /RESPONSE_TIMEOUT_SECONDS must be a number/],
    [
      'TOOLS',
      'calculate,weather',
      /^Invalid configuration: TOOLS must be none or a comma-separated list of get_current_time, calculate, convert_units \(got "calculate,weather"\)$/,
    ],
    ['TOOL_MAX_ROUNDS', '0', /TOOL_MAX_ROUNDS must be an integer from 1 to 50/],
    ['TOOL_TIMEOUT_SECONDS', 'soon', /TOOL_TIMEOUT_SECONDS must be a number/],
    [
      'TRUST_PROXY',
      '10.0.0.0/33',
      /^Invalid configuration: TRUST_PROXY must be true, false, a number of proxy hops, or a comma-separated list of proxy addresses/,
    ],
    ['TRUST_PROXY', '10.0.0.1,fe80::1/129', /TRUST_PROXY must be true, false, a number of proxy hops/],
    ['TRUST_PROXY', '10.0.0.256', /TRUST_PROXY must be true, false, a number of proxy hops/],
    ['TRUST_PROXY', '::ffff:10.0.0.1:1', /TRUST_PROXY must be true, false, a number of proxy hops/],
  ])('stops on an invalid %s with one line naming it', (name, value, message) => {
    expect(() => load({ [name]: value })).toThrow(ConfigError);
    try {
      load({ [name]: value });
    } catch (error) {
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('turns every built-in tool on by default, a chosen few with TOOLS, and none with TOOLS=none', () => {
    expect(load({})).toMatchObject({
      TOOLS: ['get_current_time', 'calculate', 'convert_units'],
      TOOL_TIMEOUT_SECONDS: 10,
      TOOL_MAX_ROUNDS: 5,
    });
    expect(load({ TOOLS: ' calculate , convert_units,calculate' }).TOOLS).toEqual(['calculate', 'convert_units']);
    expect(load({ TOOLS: 'NONE' }).TOOLS).toEqual([]);
    expect(load({ TOOLS: '' }).TOOLS).toHaveLength(3);
  });

  it('never echoes a secret value in its error', () => {
    expect(() => load({ API_KEYS: 'short' })).toThrow(/^Invalid configuration: API_KEYS must be a comma-separated list/);
    expect(() => load({ API_KEYS: 'short' })).not.toThrow(/short"/);
  });

  it('requires the key of an explicitly chosen provider', () => {
    expect(() => load({ LLM_PROVIDER: 'gemini' })).toThrow(/GEMINI_API_KEY is required when LLM_PROVIDER=gemini/);
    expect(() => load({ LLM_PROVIDER: 'openai' })).toThrow(/OPENAI_BASE_URL or OPENAI_API_KEY is required/);
  });

  it('reads a .env file, with the environment taking precedence', () => {
    const directory = mkdtempSync(join(tmpdir(), 'chatwait-env-'));
    const file = join(directory, '.env');
    writeFileSync(file, '# a comment\nPORT=9100\nGEMINI_MODEL="gemini-pro"\nDEBUG=true\n');
    const config = loadConfig({ PORT: '9200' }, file);
    expect(config).toMatchObject({ PORT: 9200, GEMINI_MODEL: 'gemini-pro', DEBUG: true });
  });
});

describe('resolveProvider', () => {
  it('prefers Gemini, then an OpenAI-compatible endpoint, then the demo model', () => {
    expect(resolveProvider(load({}))).toBe('demo');
    expect(resolveProvider(load({ OPENAI_BASE_URL: 'http://localhost:11434/v1' }))).toBe('openai');
    expect(resolveProvider(load({ OPENAI_API_KEY: 'sk-test' }))).toBe('openai');
    expect(resolveProvider(load({ GEMINI_API_KEY: 'g', OPENAI_API_KEY: 'sk-test' }))).toBe('gemini');
    expect(resolveProvider(load({ GEMINI_API_KEY: 'g', LLM_PROVIDER: 'demo' }))).toBe('demo');
  });
});

describe('the configuration docs', () => {
  const root = new URL('..', import.meta.url);
  it('.env.example documents every variable, with a value that loads', () => {
    const example = readFileSync(new URL('.env.example', root), 'utf8');
    for (const name of CONFIG_VARIABLES) expect(example).toMatch(new RegExp(`^${name}=`, 'm'));
    const file = join(mkdtempSync(join(tmpdir(), 'chatwait-example-')), '.env');
    writeFileSync(file, example);
    expect(() => loadConfig({}, file)).not.toThrow();
  });

  it('the README configuration table names every variable', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    for (const name of CONFIG_VARIABLES) expect(readme).toContain(`\`${name}\``);
  });
});
