// Memory soak: one client, inside the default limits, asks the demo model at full speed for the
// longest answers it can, several at a time, honouring 429 Retry-After, for a bounded time. The
// server's heap is sampled from /metrics every second; prints the peak and the growth rate.
// Loopback only; stops by itself. Usage (after `npm run build`):
//   node bench/memory-soak.mjs [--seconds=60] [--concurrency=4] [--main=dist/main.js] [--heap-mb=N] [KEY=value ...]
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const { AbortSignal } = globalThis;
const options = { seconds: 60, concurrency: 4, main: 'dist/main.js', 'heap-mb': undefined, message: 'answer in 100000 tokens' };
const extraEnv = {};
for (const argument of process.argv.slice(2)) {
  const option = /^--([a-z-]+)=(.*)$/.exec(argument);
  const variable = /^([A-Z_]+)=(.*)$/.exec(argument);
  if (option && option[1] in options) options[option[1]] = option[2];
  else if (variable) extraEnv[variable[1]] = variable[2];
  else throw new Error(`unknown argument ${argument}`);
}
const seconds = Number(options.seconds);
const concurrency = Number(options.concurrency);

const directory = mkdtempSync(join(tmpdir(), 'chatwait-soak-'));
const nodeArguments = options['heap-mb'] ? [`--max-old-space-size=${options['heap-mb']}`] : [];
const server = spawn(process.execPath, [...nodeArguments, resolve(options.main)], {
  cwd: directory,
  env: {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    // info: the start-up line names the port; later lines are drained unread.
    LOG_LEVEL: 'info',
    DATABASE_URL: `sqlite:${join(directory, 'soak.db')}`,
    LLM_PROVIDER: 'demo',
    DEMO_TOKENS_PER_SECOND: '0',
    ...extraEnv,
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
let stderr = '';
server.stderr.on('data', (chunk) => (stderr += chunk));
const exited = new Promise((resolveExit) => server.on('exit', (code, signal) => resolveExit({ code, signal })));
let exit;
void exited.then((value) => (exit = value));
const url = await new Promise((resolveUrl, reject) => {
  server.stdout.on('data', (chunk) => {
    output += chunk;
    const match = /listening on (http:\/\/[^\s"]+)/.exec(output);
    if (match) resolveUrl(match[1]);
  });
  void exited.then(() => reject(new Error(`the server exited before listening: ${stderr}`)));
});
// Beyond the start-up line the server's logs are not needed; keep draining them.
server.stdout.removeAllListeners('data');
server.stdout.resume();

const started = performance.now();
const deadline = started + seconds * 1000;
const counts = { answers: 0, tokens: 0, limited: 0, failed: 0 };
const samples = [];

const sleep = (milliseconds) => new Promise((resolveSleep) => setTimeout(resolveSleep, milliseconds));

async function metric(text, name) {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

async function sample() {
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    samples.push({
      at: (performance.now() - started) / 1000,
      heapUsed: await metric(text, 'chatwait_nodejs_heap_size_used_bytes'),
      replayLogBytes: await metric(text, 'chatwait_replay_log_bytes'),
      activeTurns: await metric(text, 'chatwait_active_turns'),
    });
  } catch {
    // A server too busy (or gone) to answer within 5 s: no sample this time.
  }
}

async function client() {
  while (performance.now() < deadline && !exit) {
    try {
      const response = await fetch(`${url}/api/v1/chat/wait`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: options.message }),
        signal: AbortSignal.timeout(Math.max(1, Math.round(deadline - performance.now()))),
      });
      const body = await response.json();
      if (response.status === 200) {
        counts.answers++;
        counts.tokens += body.token_count;
      } else if (response.status === 429) {
        counts.limited++;
        await sleep(Number(response.headers.get('retry-after') ?? '1') * 1000);
      } else {
        counts.failed++;
        await sleep(1000);
      }
    } catch (error) {
      if (performance.now() < deadline && !exit) {
        if (counts.failed === 0) console.error(`first failure: ${error}`);
        counts.failed++;
        await sleep(200);
      }
    }
  }
}

const sampler = (async () => {
  while (performance.now() < deadline && !exit) {
    await sample();
    await sleep(1000);
  }
})();
await Promise.all([sampler, ...Array.from({ length: concurrency }, client)]);
const survived = !exit;
if (survived) await sample();
server.kill('SIGKILL');
await exited;

const heap = samples.filter((entry) => entry.heapUsed !== undefined);
const peak = Math.max(...heap.map((entry) => entry.heapUsed));
// Growth rate: least-squares slope of heap used over time, MB per second.
const meanT = heap.reduce((sum, entry) => sum + entry.at, 0) / heap.length;
const meanH = heap.reduce((sum, entry) => sum + entry.heapUsed, 0) / heap.length;
const slope =
  heap.reduce((sum, entry) => sum + (entry.at - meanT) * (entry.heapUsed - meanH), 0) /
  heap.reduce((sum, entry) => sum + (entry.at - meanT) ** 2, 0);
const mb = (bytes) => Math.round((bytes / 1_048_576) * 10) / 10;
const result = {
  seconds,
  concurrency,
  survived,
  exit: survived ? null : exit,
  ...counts,
  samples: heap.length,
  peakHeapUsedMB: mb(peak),
  lastHeapUsedMB: heap.length > 0 ? mb(heap.at(-1).heapUsed) : null,
  heapGrowthMBPerSecond: Math.round((slope / 1_048_576) * 100) / 100,
  peakReplayLogMB: heap.some((entry) => entry.replayLogBytes !== undefined)
    ? mb(Math.max(...heap.map((entry) => entry.replayLogBytes ?? 0)))
    : null,
  heapByTenSeconds: heap.filter((entry, index) => index % 10 === 0).map((entry) => [Math.round(entry.at), mb(entry.heapUsed)]),
};
console.log(JSON.stringify(result));
if (!survived)
  console.error(
    stderr
      .split('\n')
      .filter((line) => /heap|memory|FATAL/i.test(line))
      .slice(0, 5)
      .join('\n'),
  );
