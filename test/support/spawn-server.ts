import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const MAIN = resolve(import.meta.dirname, '../../dist/main.js');

/** The compiled server (what `npm start` runs) in a process of its own. */
export interface SpawnedServer {
  child: ChildProcessWithoutNullStreams;
  url: Promise<string>;
  exited: Promise<number | null>;
  output(): { stdout: string; stderr: string };
  /** The process's resident memory, in bytes (Linux). */
  rss(): number;
}

/** Starts dist/main.js on 127.0.0.1 and a free port, in an empty directory (so no developer .env is read); `maxOpenFiles` lowers its descriptor limit; `main` runs another build's entry point. */
export function spawnServer(
  env: Record<string, string>,
  { maxOpenFiles, main = MAIN }: { maxOpenFiles?: number; main?: string } = {},
): SpawnedServer {
  // `ulimit -n` sets the hard limit too, so Node cannot raise it again at start-up.
  const [command, args] = maxOpenFiles
    ? ['sh', ['-c', `ulimit -n ${maxOpenFiles} && exec "$0" "$@"`, process.execPath, main]]
    : [process.execPath, [main]];
  const child = spawn(command, args, {
    cwd: mkdtempSync(join(tmpdir(), 'chatwait-process-')),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', DATABASE_URL: 'memory', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const url = new Promise<string>((resolveUrl, reject) => {
    child.stdout.on('data', () => {
      const match = /listening on (http:\/\/[^\s"]+)/.exec(stdout);
      if (match) resolveUrl(match[1]!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}: ${stderr}`)));
  });
  url.catch(() => {});
  const rss = () => {
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) * 1024;
  };
  return { child, url, exited, output: () => ({ stdout, stderr }), rss };
}
