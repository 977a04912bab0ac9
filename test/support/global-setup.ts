import { execFileSync } from 'node:child_process';

/** Compiles dist/ once, so tests can run the real entry point as `npm start` does. */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
