// `npm start` runs the built server; this builds it first, only when the build is missing or stale.
// Missing: dist/ holds no marker of a finished build (a fresh clone, or a build cut short). Stale: a
// file under src/, web/ or scripts/, package.json or a tsconfig*.json is newer than the marker.
// `npm run build` writes the marker: `--begin` is its first step, `--end` its last, and the marker
// keeps the time the build began, so a file saved while it ran still counts as newer.
//   node scripts/ensure-build.mjs           build when missing or stale (what `npm start` runs first)
//   node scripts/ensure-build.mjs --check   only say: exit 0 when the build is fresh, 1 (and why) when not
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const started = join(dist, '.build-started');
const marker = join(dist, '.build-complete');
const SOURCE_FOLDERS = ['src', 'web', 'scripts'];
const SOURCE_FILE = /^(package\.json|tsconfig.*\.json)$/;

/** The first source file newer than `since` (ms), or undefined. */
function newerSource(since) {
  const pending = [
    ...SOURCE_FOLDERS.map((folder) => join(root, folder)),
    ...readdirSync(root)
      .filter((name) => SOURCE_FILE.test(name))
      .map((name) => join(root, name)),
  ];
  while (pending.length > 0) {
    const path = pending.pop();
    if (!existsSync(path)) continue;
    const stats = statSync(path);
    if (stats.isDirectory()) {
      for (const entry of readdirSync(path)) if (entry !== 'node_modules') pending.push(join(path, entry));
    } else if (stats.mtimeMs > since) {
      return path;
    }
  }
  return undefined;
}

/** Why the build must run, or undefined when it is fresh. */
function reasonToBuild() {
  if (!existsSync(marker) || !existsSync(join(dist, 'main.js'))) return 'dist/ holds no finished build';
  const changed = newerSource(statSync(marker).mtimeMs);
  return changed ? `${relative(root, changed)} changed since the last build` : undefined;
}

/** Whether the dev dependencies that build are here (TypeScript stands for them). */
function buildToolsInstalled() {
  try {
    createRequire(join(root, 'package.json')).resolve('typescript/package.json');
    return true;
  } catch {
    return false;
  }
}

const mode = process.argv[2];
if (mode === '--begin') {
  mkdirSync(dist, { recursive: true });
  rmSync(marker, { force: true });
  writeFileSync(started, '');
} else if (mode === '--end') {
  if (existsSync(started)) renameSync(started, marker);
  else writeFileSync(marker, '');
} else if (mode === '--check') {
  const reason = reasonToBuild();
  if (reason) process.stderr.write(`The build is not fresh: ${reason}.\n`);
  process.exitCode = reason ? 1 : 0;
} else if (mode === undefined) {
  const reason = reasonToBuild();
  if (reason && !buildToolsInstalled()) {
    // A runtime-only install (npm ci --omit=dev) cannot build: it runs what is built, if anything is.
    const built = existsSync(join(dist, 'main.js'));
    process.stderr.write(
      built
        ? `The build may be stale (${reason}), and the build tools are not installed: starting what is built.\n`
        : 'Nothing is built and the build tools are not installed: run `npm ci` first.\n',
    );
    process.exitCode = built ? 0 : 1;
  } else if (reason) {
    process.stderr.write(`Building first (${reason})…\n`);
    // A build from nothing must write every file: tsc's incremental state would skip those it believes written.
    if (!existsSync(marker)) rmSync(join(dist, '.tsbuildinfo'), { force: true });
    // Under npm (`npm start`), the same npm runs the build; run by hand, the one on PATH.
    const npm = process.env.npm_execpath;
    try {
      if (npm) execFileSync(process.execPath, [npm, 'run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
      else execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
    } catch {
      // The build printed why it failed; what is built is not what the sources say, so nothing starts.
      process.exitCode = 1;
    }
  }
} else {
  process.stderr.write(`Unknown option ${mode}: use --check, --begin or --end, or nothing.\n`);
  process.exitCode = 2;
}
