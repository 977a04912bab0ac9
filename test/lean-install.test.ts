import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnServer, type SpawnedServer } from './support/spawn-server.js';
import { postJson } from './support/test-server.js';

const ROOT = resolve(import.meta.dirname, '..');
const servers: SpawnedServer[] = [];
afterAll(() => {
  for (const server of servers) server.child.kill('SIGKILL');
});

describe('a built tree installed without dev dependencies', () => {
  it('serves the API, the chat page and ReDoc with only the runtime packages (npm ci --omit=dev)', async () => {
    const tree = mkdtempSync(join(tmpdir(), 'chatwait-lean-'));
    for (const name of ['package.json', 'package-lock.json', 'dist']) cpSync(join(ROOT, name), join(tree, name), { recursive: true });
    await promisify(execFile)('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: tree, timeout: 170_000 });
    // The page's libraries and ReDoc are bundled at build time: none of them is installed.
    for (const buildTimeOnly of ['react', 'react-dom', 'react-markdown', 'redoc', 'vite', 'typescript']) {
      expect(existsSync(join(tree, 'node_modules', buildTimeOnly)), buildTimeOnly).toBe(false);
    }

    const server = spawnServer({}, { main: join(tree, 'dist', 'main.js') });
    servers.push(server);
    const url = await server.url;
    const answer = await postJson(`${url}/api/v1/chat/wait`, { message: 'hello' });
    expect(answer.status).toBe(200);
    expect(answer.body.message.length).toBeGreaterThan(0);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root">');
    const redoc = await fetch(`${url}/redoc/redoc.standalone.js`);
    expect(redoc.status).toBe(200);
    expect((await redoc.arrayBuffer()).byteLength).toBeGreaterThan(500_000);
  }, 180_000);
});
