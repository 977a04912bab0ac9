import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './support/run-cli.js';

// bin/chatwait.mjs (what `npx chatwait` runs) compiles the client on a fresh clone, and again
// when its sources change, run for real in a copy of the repository.

const repo = resolve(import.meta.dirname, '..');
const copy = mkdtempSync(join(tmpdir(), 'chatwait-launcher-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

const launcher = join(copy, 'bin/chatwait.mjs');
const runLauncher = (args: string[]) => runCli(args, { script: launcher });

/** Adds a mark to the main help, as an edit or a `git pull` would change a source file. */
function editHelp(mark: string) {
  const file = join(copy, 'src/cli/main.ts');
  writeFileSync(file, readFileSync(file, 'utf8').replace('Run "chatwait <command> --help"', `${mark} Run "chatwait <command> --help"`));
}

describe('bin/chatwait.mjs', () => {
  it('compiles the client on the first run, again after a source changed, and not otherwise', { timeout: 90_000 }, async () => {
    // A fresh clone after `npm ci`: sources (with their times), no dist/.
    for (const path of ['src', 'bin', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
      cpSync(join(repo, path), join(copy, path), { recursive: true, preserveTimestamps: true });
    }
    symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'), 'dir');

    const first = await runLauncher(['--help']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('compiling the client (first run only)');
    expect(first.stdout).toContain('Usage: chatwait <command> [options]');
    expect(existsSync(join(copy, 'dist/cli/main.js'))).toBe(true);

    // An edit, and a source touched but not changed (a checkout back and forth, which tsc does not write again).
    editHelp('EDITED-ONCE.');
    utimesSync(join(copy, 'src/cli/terminal.ts'), new Date(), new Date());
    const edited = await runLauncher(['--help']);
    expect(edited.code, edited.stderr).toBe(0);
    expect(edited.stderr).toContain('recompiling the client');
    expect(edited.stdout).toContain('EDITED-ONCE.');

    // Up to date now: no compiling.
    const again = await runLauncher(['--help']);
    expect(again.stderr).toBe('');
    expect(again.stdout).toContain('EDITED-ONCE.');

    // Without TypeScript (no dev dependencies), it runs what is built.
    rmSync(join(copy, 'node_modules'));
    editHelp('EDITED-TWICE.');
    const withoutTypeScript = await runLauncher(['--help']);
    expect(withoutTypeScript.code, withoutTypeScript.stderr).toBe(0);
    expect(withoutTypeScript.stderr).toBe('');
    expect(withoutTypeScript.stdout).toContain('EDITED-ONCE.');
    expect(withoutTypeScript.stdout).not.toContain('EDITED-TWICE.');

    // Nothing built and no TypeScript: it says what to do.
    rmSync(join(copy, 'dist'), { recursive: true });
    const nothing = await runLauncher(['--help']);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('Run `npm ci` and then `npm run build`');
  });

  it('is what `npm exec chatwait` (as `npx chatwait`) runs in the repository', async () => {
    const { code, stdout, stderr } = await runCli(['-c', 'cd "$1" && npm exec --offline chatwait -- --help', 'sh', repo], {
      executable: 'sh',
    });
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('Usage: chatwait <command> [options]');
  });
});
