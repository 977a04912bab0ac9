import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Builds dist/ (server and chat page) once, so tests run the real entry point and serve the real
 * page; and points TMPDIR at one directory for the run (test databases, spawned servers' working
 * directories, browser profiles), removed at the end so runs leave nothing behind.
 */
export default function setup(): () => void {
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-tests-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = directory;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(directory, { recursive: true, force: true });
  };
}
