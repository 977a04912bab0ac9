import { execFileSync } from 'node:child_process';

/** Builds dist/ (server and chat page) once, so tests run the real entry point and serve the real page. */
export default function setup(): void {
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
}
