import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.js';
import { NGINX_CONFIG, renderNginxConfig } from './support/nginx.js';
import { chatWaitServices, interpolate, readCompose, ROOT, serviceEnvironment } from './support/deploy-files.js';
import { freePort } from '../scripts/local-postgres.mjs';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';

/** What a deployment sets in its .env (the compose file's required variables), for reading the file as Compose would. */
const DOT_ENV = { POSTGRES_PASSWORD: 'example-password' };

/** The Dockerfile's instructions, one per entry (continuation lines joined, comments dropped), grouped by stage. */
function dockerfileStages(): { from: string; name: string | undefined; instructions: string[] }[] {
  const text = readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages: { from: string; name: string | undefined; instructions: string[] }[] = [];
  for (const line of text.split('\n').map((item) => item.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1]!, name: from[2], instructions: [] });
    else stages.at(-1)!.instructions.push(line);
  }
  return stages;
}

/** The JSON (exec form) command after `CMD` in a Dockerfile instruction. */
function execForm(instruction: string): string[] {
  return JSON.parse(instruction.slice(instruction.indexOf('CMD ') + 4)) as string[];
}

/** Runs a health check command (`node -e …`) as the container would, with PORT set; resolves to its exit code. */
async function runHealthCheck(command: string[], port: number): Promise<number> {
  expect(command[0]).toBe('node');
  try {
    await promisify(execFile)(process.execPath, command.slice(1), { env: { PORT: String(port) }, timeout: 10_000 });
    return 0;
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
}

describe('the Dockerfile', () => {
  const stages = dockerfileStages();
  const runtime = stages.at(-1)!;
  let server: SpawnedServer;
  beforeAll(() => {
    server = spawnServer({});
  });
  afterAll(() => {
    server.child.kill('SIGKILL');
  });

  it('builds in one stage and runs a Node 24 slim image with production dependencies only, as a user other than root', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((stage) => stage.instructions.some((instruction) => /^RUN .*npm run build/.test(instruction)));
    expect(build?.name).toBeDefined();
    expect(runtime.from).toMatch(/^node:24(\.[\d.]+)?-[a-z]+-slim$/);
    expect(runtime.instructions).toContain('RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force');
    expect(runtime.instructions.some((instruction) => instruction.startsWith(`COPY --from=${build!.name} /app/dist `))).toBe(true);
    const users = runtime.instructions.filter((instruction) => instruction.startsWith('USER '));
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^USER (root|0)(:|$)/);
    // The user is set before the command, so the process never runs as root.
    const index = (prefix: string) => runtime.instructions.findIndex((instruction) => instruction.startsWith(prefix));
    expect(index('USER ')).toBeLessThan(index('CMD '));
  });

  it('starts the built entry point with node itself, never npm', () => {
    const command = execForm(runtime.instructions.find((instruction) => instruction.startsWith('CMD '))!);
    expect(command[0]).toBe('node');
    expect(command.join(' ')).not.toMatch(/\bnpm\b/);
    const entry = command.find((argument) => argument.startsWith('dist/'));
    const packageJson = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { main: string };
    expect(entry).toBe(packageJson.main);
    // The tests' global setup has run `npm run build`, as the build stage does.
    expect(existsSync(resolve(ROOT, entry!))).toBe(true);
    expect(runtime.instructions.some((instruction) => instruction.startsWith('ENTRYPOINT'))).toBe(false);
  });

  it('has a health check that passes against a ready ChatWait and fails when nothing answers', async () => {
    const healthCheck = runtime.instructions.find((instruction) => instruction.startsWith('HEALTHCHECK '))!;
    expect(healthCheck).toBeDefined();
    const command = execForm(healthCheck);
    const port = Number(new URL(await server.url).port);
    expect(await runHealthCheck(command, port)).toBe(0);
    expect(await runHealthCheck(command, await freePort())).toBe(1);
  });

  it('leaves out of the build context what is installed or built inside, and nothing the build needs', () => {
    const patterns = readFileSync(resolve(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    for (const ignored of ['node_modules', 'dist', '.git', '.tools']) expect(patterns).toContain(ignored);
    // Every secrets file (.env, .env.local, .env.production…), only the example kept.
    expect(patterns).toContain('.env*');
    expect(patterns.indexOf('!.env.example')).toBeGreaterThan(patterns.indexOf('.env*'));
    const ignores = (path: string) => patterns.some((pattern) => path === pattern || path.startsWith(`${pattern}/`));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'web', 'scripts']) {
      expect(ignores(needed), needed).toBe(false);
    }
  });
});

describe('compose.yaml', () => {
  const compose = readCompose();
  const replicas = chatWaitServices(compose);

  it('runs PostgreSQL, Redis, two ChatWait instances built from this repository and nginx', () => {
    expect(replicas).toHaveLength(2);
    // Both run one image, built once from this repository (without a name, Compose would build one per service).
    const images = replicas.map((name) => [compose.services[name]!.image, compose.services[name]!.build]);
    expect(images).toEqual(replicas.map(() => ['chatwait:local', '.']));
    expect(compose.services.postgres?.image).toMatch(/^postgres:\d+/);
    expect(compose.services.redis?.image).toMatch(/^redis:\d+/);
    expect(compose.services.nginx?.image).toMatch(/^nginx:/);
    expect(compose.services.postgres?.volumes?.some((volume) => volume.endsWith(':/var/lib/postgresql/data'))).toBe(true);
  });

  it("gives each instance only ChatWait's variables, valid by its configuration schema, with PostgreSQL and Redis", () => {
    const postgres = serviceEnvironment(compose.services.postgres!, DOT_ENV);
    for (const name of replicas) {
      const environment = serviceEnvironment(compose.services[name]!, DOT_ENV);
      for (const variable of Object.keys(environment)) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      const config = loadConfig(environment, undefined);
      expect(config.HOST).toBe('0.0.0.0');
      expect(config.TRUST_PROXY).toBe(true);
      // The URLs name the services of this file, with the credentials PostgreSQL is given.
      const database = new URL(config.DATABASE_URL);
      expect(database.protocol).toBe('postgres:');
      expect(database.hostname in compose.services).toBe(true);
      expect([database.username, database.password, database.pathname]).toEqual([
        postgres.POSTGRES_USER,
        postgres.POSTGRES_PASSWORD,
        `/${postgres.POSTGRES_DB}`,
      ]);
      expect(new URL(config.REDIS_URL!).hostname).toBe('redis');
      // Stopping lets the drain finish before Docker kills the process.
      expect(Number.parseInt(compose.services[name]!.stop_grace_period!, 10)).toBeGreaterThanOrEqual(config.SHUTDOWN_DRAIN_SECONDS + 5);
    }
    // Without the required secret, Compose refuses to start instead of running with a blank password.
    expect(() => serviceEnvironment(compose.services[replicas[0]!]!, {})).toThrow(/POSTGRES_PASSWORD/);
  });

  it('checks the health of every service it waits for, and starts each after what it needs is healthy', () => {
    for (const name of ['postgres', 'redis', ...replicas]) expect(compose.services[name]!.healthcheck?.test, name).toBeDefined();
    expect(compose.services.postgres!.healthcheck!.test).toEqual(expect.arrayContaining(['pg_isready', '-h']));
    expect(compose.services.redis!.healthcheck!.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const name of replicas) {
      expect(compose.services[name]!.depends_on).toEqual({
        postgres: { condition: 'service_healthy' },
        redis: { condition: 'service_healthy' },
      });
      // Only nginx is published: the instances trust their peer's X-Forwarded-For, so nothing else may reach them.
      expect(compose.services[name]!.ports).toBeUndefined();
    }
    expect(compose.services.nginx!.depends_on).toEqual(
      Object.fromEntries(replicas.map((name) => [name, { condition: 'service_healthy' }])),
    );
  });

  it('has instance health checks that pass against a ready ChatWait', async () => {
    const server = spawnServer({});
    try {
      const port = Number(new URL(await server.url).port);
      for (const name of replicas) {
        const test = compose.services[name]!.healthcheck!.test as string[];
        expect(test[0]).toBe('CMD');
        expect(await runHealthCheck(test.slice(1), port)).toBe(0);
      }
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it("mounts the repository's nginx configuration, whose upstream names both instances at their port", () => {
    const nginx = compose.services.nginx!;
    expect(nginx.volumes).toContain('./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro');
    expect(nginx.ports).toEqual(['8080:80']);
    const upstream = /upstream chatwait \{([^}]*)\}/.exec(readFileSync(resolve(ROOT, 'deploy/nginx.conf'), 'utf8'))![1]!;
    const servers = [...upstream.matchAll(/^\s*server\s+([^;\s]+)/gm)].map((match) => match[1]);
    const ports = replicas.map((name) => serviceEnvironment(compose.services[name]!, DOT_ENV).PORT);
    expect(servers).toEqual(replicas.map((name, index) => `${name}:${ports[index]}`));
  });

  it('reads ${…} references as Docker Compose does', () => {
    expect(interpolate('a${X}b', { X: '1' })).toBe('a1b');
    expect(interpolate('${X:-d}|${Y:-d}|${Z-d}', { X: '', Z: '' })).toBe('d|d|');
    expect(interpolate('${X:+on}|${Y:+on}|$$HOME', { X: '1' })).toBe('on||$HOME');
    expect(() => interpolate('${X:?set X}', { X: '' })).toThrow('compose needs X: set X');
    expect(interpolate('${X?set X}', { X: '' })).toBe('');
  });
});

describe('deploy/nginx.conf as the tests run it', () => {
  it('differs from the file only in its upstream server lines and its listen line', () => {
    const original = readFileSync(NGINX_CONFIG, 'utf8');
    const rendered = renderNginxConfig(original, { upstreams: ['127.0.0.1:1001', '127.0.0.1:1002'], listen: '127.0.0.1:2000' });
    const originalLines = original.split('\n');
    const renderedLines = rendered.split('\n');
    expect(renderedLines).toHaveLength(originalLines.length);
    expect(originalLines.map((line, index) => [line, renderedLines[index]]).filter(([before, after]) => before !== after)).toEqual([
      ['    server chatwait-1:8000;', '    server 127.0.0.1:1001;'],
      ['    server chatwait-2:8000;', '    server 127.0.0.1:1002;'],
      ['    listen 80;', '    listen 127.0.0.1:2000;'],
    ]);
  });

  it('refuses to render a file without what it replaces', () => {
    const options = { upstreams: ['127.0.0.1:1001'], listen: '127.0.0.1:2000' };
    expect(() => renderNginxConfig('server {\n    listen 80;\n}\n', options)).toThrow(/upstream chatwait/);
    expect(() => renderNginxConfig('upstream chatwait {\n    server a:1;\n}\n', options)).toThrow(/listen/);
  });
});

/** One nginx directive: its name, arguments (quotes removed) and, for a block, the directives inside. */
interface Directive {
  name: string;
  args: string[];
  block?: Directive[];
}

/** nginx's configuration syntax as a tree: words, quoted strings, `;`, `{ }` and `#` comments. */
function parseNginx(text: string): Directive[] {
  const tokens: string[] = [];
  for (const match of text.matchAll(/#[^\n]*|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([{};])|([^\s{};'"#]+)/g)) {
    if (match[0].startsWith('#')) continue;
    tokens.push(match[1] ?? match[2] ?? match[3] ?? match[4]!);
  }
  let position = 0;
  const parseBlock = (): Directive[] => {
    const directives: Directive[] = [];
    while (position < tokens.length && tokens[position] !== '}') {
      const words: string[] = [];
      while (tokens[position] !== ';' && tokens[position] !== '{') words.push(tokens[position++]!);
      const [name, ...args] = words as [string, ...string[]];
      if (tokens[position++] === '{') {
        directives.push({ name, args, block: parseBlock() });
        position++;
      } else directives.push({ name, args });
    }
    return directives;
  };
  return parseBlock();
}

describe("deploy/nginx.conf's directives", () => {
  const rendered = renderNginxConfig(readFileSync(NGINX_CONFIG, 'utf8'), { upstreams: ['127.0.0.1:1001'], listen: '127.0.0.1:2000' });
  const server = parseNginx(rendered).find((directive) => directive.name === 'server')!.block!;
  const locations = new Map(server.filter((item) => item.name === 'location').map((item) => [item.args.join(' '), item.block!]));
  /** A directive's arguments in effect in a location: its own, else the server's (nginx's inheritance). */
  const effective = (location: string, name: string) =>
    (locations.get(location)!.find((item) => item.name === name) ?? server.find((item) => item.name === name))?.args;
  const chatRoutes = ['/api/v1/chat/wait', '/api/v1/chat/streaming', '/api/v1/chat/turns/t1/cancel'];
  /** The location nginx picks for a path: an exact match, else the longest prefix. */
  const locationOf = (path: string) =>
    locations.has(`= ${path}`)
      ? `= ${path}`
      : [...locations.keys()].filter((key) => !key.startsWith('=') && path.startsWith(key)).sort((a, b) => b.length - a.length)[0]!;

  it('proxies without buffering in every location, and no location turns it back on', () => {
    expect(server.find((item) => item.name === 'proxy_buffering')?.args).toEqual(['off']);
    for (const location of locations.keys()) {
      if (location.startsWith('@')) continue;
      expect(effective(location, 'proxy_buffering'), location).toEqual(['off']);
      expect(effective(location, 'proxy_pass'), location).toEqual(['http://chatwait']);
    }
  });

  it('gives the chat routes a read timeout of an hour and leaves every other route at the default', () => {
    for (const path of chatRoutes) expect(effective(locationOf(path), 'proxy_read_timeout'), path).toEqual(['1h']);
    for (const path of ['/api/v1/conversations', '/api/v1/health/ready', '/']) {
      expect(effective(locationOf(path), 'proxy_read_timeout'), path).toBeUndefined();
    }
    expect(rendered).not.toMatch(/proxy_send_timeout/);
  });

  it('never sends the GET that starts a turn to a second instance', () => {
    expect(locationOf('/api/v1/chat/streaming')).toBe('= /api/v1/chat/streaming');
    expect(effective('= /api/v1/chat/streaming', 'proxy_next_upstream')).toEqual(['off']);
  });

  it('reads quoted braces and comments as nginx does', () => {
    expect(parseNginx(`map $a $b { "~^{x}$" 1; } # c { ;\nserver { return 413 '{"a":1}'; }`)).toEqual([
      { name: 'map', args: ['$a', '$b'], block: [{ name: '~^{x}$', args: ['1'] }] },
      { name: 'server', args: [], block: [{ name: 'return', args: ['413', '{"a":1}'] }] },
    ]);
  });
});
