#!/usr/bin/env node
// The `chatwait` command: runs the compiled client (dist/cli/main.js). It first compiles src/ with
// the project's TypeScript (as `npm run build:server` does) when the client is not built yet (a
// fresh clone) or when one of its source files is newer than what was built from it (after a
// `git pull` or an edit). Without TypeScript (dev dependencies not installed) it runs what is built.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const main = join(root, 'dist/cli/main.js');

/** src/cli/main.ts and every source file it imports, directly or not (relative imports, `.js` read as `.ts`). */
function clientSources() {
  const found = new Set();
  const pending = [join(root, 'src/cli/main.ts')];
  while (pending.length > 0) {
    const file = pending.pop();
    if (found.has(file) || !existsSync(file)) continue;
    found.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      pending.push(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
    }
  }
  return [...found];
}

/** Where tsc writes a source file's JavaScript (rootDir src, outDir dist). */
const outputOf = (source) => join(root, 'dist', relative(join(root, 'src'), source)).replace(/\.ts$/, '.js');
const modified = (file) => (existsSync(file) ? statSync(file).mtimeMs : undefined);

const sources = clientSources();
const missing = !existsSync(main) || sources.some((source) => !existsSync(outputOf(source)));
const stale = missing || sources.some((source) => modified(source) > modified(outputOf(source)));

if (stale) {
  let compiler;
  try {
    compiler = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    if (!existsSync(main)) {
      process.stderr.write('chatwait: the client is not built and TypeScript is not installed. Run `npm ci` and then `npm run build`.\n');
      process.exit(1);
    }
    // No TypeScript here: what is built is all there is.
  }
  if (compiler) {
    process.stderr.write(
      existsSync(main) ? 'chatwait: recompiling the client (its sources changed)…\n' : 'chatwait: compiling the client (first run only)…\n',
    );
    // An incremental build does not write again a file it believes written: without it, build everything.
    if (missing) rmSync(join(root, 'dist/.tsbuildinfo'), { force: true });
    try {
      execFileSync(process.execPath, [compiler, '-p', 'tsconfig.build.json'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
      // tsc writes only what changed (nothing for a file touched but not changed): mark every output as up to date.
      const now = new Date();
      for (const source of sources) if (existsSync(outputOf(source))) utimesSync(outputOf(source), now, now);
    } catch {
      if (!existsSync(main)) {
        process.stderr.write('chatwait: compiling failed. Run `npm run build` to see why.\n');
        process.exit(1);
      }
      process.stderr.write('chatwait: compiling failed (run `npm run build` to see why); running the client as built.\n');
    }
  }
}
await import(pathToFileURL(main).href);
