import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const run = promisify(execFile);

/**
 * A project laid out like ChatWait, with the real scripts/ensure-build.mjs and its real npm, whose
 * build is quick: it writes dist/main.js (which prints "started") and counts the builds it made.
 */
function createProject(): string {
  const project = mkdtempSync(join(tmpdir(), 'chatwait-ensure-build-'));
  mkdirSync(join(project, 'scripts'));
  mkdirSync(join(project, 'src'));
  mkdirSync(join(project, 'web'));
  cpSync(join(ROOT, 'scripts', 'ensure-build.mjs'), join(project, 'scripts', 'ensure-build.mjs'));
  // The build tools count as installed when TypeScript resolves: the project borrows ChatWait's.
  symlinkSync(join(ROOT, 'node_modules'), join(project, 'node_modules'), 'dir');
  writeFileSync(
    join(project, 'scripts', 'quick-build.mjs'),
    `import { appendFileSync, writeFileSync } from 'node:fs';
writeFileSync('dist/main.js', "console.log('started');\\n");
appendFileSync('builds.log', 'built\\n');
`,
  );
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({
      name: 'ensure-build-fixture',
      private: true,
      type: 'module',
      scripts: {
        build: 'node scripts/ensure-build.mjs --begin && node scripts/quick-build.mjs && node scripts/ensure-build.mjs --end',
        start: 'node scripts/ensure-build.mjs && node dist/main.js',
      },
    }),
  );
  writeFileSync(join(project, 'tsconfig.json'), '{}');
  writeFileSync(join(project, 'src', 'main.ts'), 'export {};\n');
  writeFileSync(join(project, 'web', 'index.html'), '<div id="root"></div>\n');
  return project;
}

const builds = (project: string) => readFileSync(join(project, 'builds.log'), 'utf8').split('\n').filter(Boolean).length;
const start = (project: string) => run('npm', ['start', '--silent'], { cwd: project, timeout: 60_000 });

/** Puts a file's modification time `seconds` from now (a save after the build, whatever the clock's resolution). */
function touch(path: string, seconds: number): void {
  const time = new Date(Date.now() + seconds * 1000);
  utimesSync(path, time, time);
}

describe('npm start', () => {
  it('builds when nothing is built, starts what is built when it is fresh, and rebuilds after a source changes', async () => {
    const project = createProject();

    const first = await start(project);
    expect(first.stderr).toContain('dist/ holds no finished build');
    expect(first.stdout).toContain('started');
    expect(builds(project)).toBe(1);

    const second = await start(project);
    expect(second.stdout).toContain('started');
    expect(second.stderr).toBe('');
    expect(builds(project)).toBe(1);

    for (const [index, source] of ['src/main.ts', 'web/index.html', 'scripts/quick-build.mjs', 'package.json', 'tsconfig.json'].entries()) {
      touch(join(project, source), 10);
      const after = await start(project);
      expect(after.stderr).toContain(`${source} changed since the last build`);
      expect(after.stdout).toContain('started');
      expect(builds(project)).toBe(2 + index);
      // Back in the past, so that only the next file is newer than the next build.
      touch(join(project, source), -100);
    }
    await start(project);
    expect(builds(project)).toBe(6);
  }, 120_000);

  it('builds again after a build that was cut short, even when no source changed', async () => {
    const project = createProject();
    await start(project);
    // A build that began and never finished: the marker of the last finished one is gone.
    await run(process.execPath, ['scripts/ensure-build.mjs', '--begin'], { cwd: project });
    const check = await run(process.execPath, ['scripts/ensure-build.mjs', '--check'], { cwd: project }).then(
      () => 0,
      (error: { code: number }) => error.code,
    );
    expect(check).toBe(1);
    await start(project);
    expect(builds(project)).toBe(2);
  }, 60_000);

  it("finds ChatWait's own build fresh after npm run build (the tests' global setup ran it)", async () => {
    const marker = statSync(join(ROOT, 'dist', '.build-complete'));
    expect(marker.isFile()).toBe(true);
    await expect(run(process.execPath, ['scripts/ensure-build.mjs', '--check'], { cwd: ROOT })).resolves.toMatchObject({ stderr: '' });
  });
});
