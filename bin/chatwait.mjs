#!/usr/bin/env node
// The `chatwait` command: runs the compiled client (dist/cli/main.js). On a fresh clone, where
// nothing is built yet, it first compiles src/ with the project's TypeScript (as `npm run build:server` does).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const main = new URL('../dist/cli/main.js', import.meta.url);

if (!existsSync(main)) {
  let compiler;
  try {
    compiler = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write('chatwait: the client is not built and TypeScript is not installed. Run `npm ci` and then `npm run build`.\n');
    process.exit(1);
  }
  process.stderr.write('chatwait: compiling the client (first run only)…\n');
  try {
    execFileSync(process.execPath, [compiler, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    process.stderr.write('chatwait: compiling failed. Run `npm run build` to see why.\n');
    process.exit(1);
  }
}
await import(main.href);
