// `npm run bench`: starts the fake upstream, ChatWait (on the upstream, and on the demo model), the
// bare relay and the load generator, each in its own process with a raised open-files limit; runs
// P1–P5 of performance.md against ChatWait and the relay under the same load; prints one table and
// writes bench/results/latest.json. Flags: --smoke (every scenario, briefly), --only=P1,P4 (P3-idle: only
// the idle-stream memory of P3), --store=postgres (P1 and P4 also on ChatWait processes using a
// PostgreSQL the run starts, next to the SQLite figures), --redis (P6, redis-run.mjs: two instances on
// Redis + PostgreSQL beside a single-node one; --window=ms sets REDIS_WRITE_WINDOW_MS, --redis-streams
// its concurrent streams), and --streams, --tokens, --rate, --idle, --seconds to change the loads.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPostgresBin, startLocalPostgres } from '../scripts/local-postgres.mjs';
import { printRedisTable, runRedisScale } from './redis-run.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const flags = Object.fromEntries(
  process.argv
    .slice(2)
    .map((flag) => flag.replace(/^--/, '').split('='))
    .map(([key, value]) => [key, value ?? 'true']),
);
const smoke = flags.smoke === 'true';
const only = flags.only ? new Set(flags.only.split(',')) : undefined;
const load = {
  streams: Number(flags.streams ?? (smoke ? 50 : 1000)),
  tokens: Number(flags.tokens ?? (smoke ? 40 : 200)),
  rate: Number(flags.rate ?? 50),
  // Each idle stream costs the server two descriptors (client and upstream); this sandbox's hard limit is 20,000.
  idle: Number(flags.idle ?? (smoke ? 200 : 8_000)),
  seconds: Number(flags.seconds ?? (smoke ? 3 : 15)),
  rise: smoke ? [50, 100] : [500, 1000, 2000],
  throughputStreams: smoke ? 10 : 100,
  throughputTokens: smoke ? 200 : 2000,
  resumeTokens: smoke ? 200 : 2000,
  reconnects: smoke ? 50 : 1000,
  redisWindowMs: Number(flags.window ?? 25),
  redisStreams: Number(flags['redis-streams'] ?? (smoke ? 10 : 100)),
};
const children = [];
const cleanups = [];

/** A free loopback port. */
function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a node process with the open-files limit raised as far as this user may. */
function start(script, args, env = {}, waitFor = /listening/) {
  const command = `ulimit -n 1048576 2>/dev/null || ulimit -n $(ulimit -Hn); exec "${process.execPath}" ${[script, ...args].map((arg) => `'${arg}'`).join(' ')}`;
  const child = spawn('bash', ['-c', command], { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stderr.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (waitFor.test(output)) resolve(child);
      // Keep draining stdout (logs) so the child never blocks on a full pipe.
      if (output.length > 1_000_000) output = output.slice(-10_000);
    });
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}: ${output.slice(-2000)}`)));
  });
}

/** Runs the load generator once and returns its JSON result. */
function runLoad(scenario) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'bash',
      [
        '-c',
        `ulimit -n 1048576 2>/dev/null || ulimit -n $(ulimit -Hn); exec "${process.execPath}" bench/load.mjs '${JSON.stringify(scenario)}'`,
      ],
      { cwd: root },
    );
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(output.trim().split('\n').at(-1)));
      } catch {
        reject(new Error(`load generator failed (${code}): ${output.slice(-2000)}`));
      }
    });
  });
}

/** Holds `count` idle streams open against `url` and returns the server's RSS growth per stream. */
async function idleMemory(url, pid, count) {
  const before = rss(pid);
  const child = spawn(
    'bash',
    [
      '-c',
      `ulimit -n 1048576 2>/dev/null || ulimit -n $(ulimit -Hn); exec "${process.execPath}" bench/load.mjs '${JSON.stringify({ kind: 'idle', url, count })}'`,
    ],
    { cwd: root },
  );
  const line = await new Promise((resolve) => {
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (output.includes('\n')) resolve(output.split('\n')[0]);
    });
  });
  const { open, failures, errors } = JSON.parse(line);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = rss(pid);
  child.stdin.end();
  await new Promise((resolve) => child.on('exit', resolve));
  return { open, failures, errors, bytesPerStream: open > 0 ? (after - before) / open : null, rssBefore: before, rssAfter: after };
}

function rss(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
}

async function configureUpstream(upstreamUrl, tokens, rate) {
  await fetch(`${upstreamUrl}/config?tokens=${tokens}&rate=${rate}`);
}

const round = (value, digits = 2) => (value === null || value === undefined ? null : Math.round(value * 10 ** digits) / 10 ** digits);
const ratio = (ours, theirs) => (ours && theirs ? round(ours / theirs) : null);

async function main() {
  const [upstreamPort, chatwaitPort, demoPort, relayPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  await start('bench/upstream.mjs', [String(upstreamPort)]);
  const data = mkdtempSync(join(tmpdir(), 'chatwait-bench-'));
  const common = {
    HOST: '127.0.0.1',
    RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
    MAX_STREAMS_PER_CLIENT: '0',
    MAX_CONNECTIONS_PER_CLIENT: '0',
    MAX_PENDING_CONNECTIONS: '0',
    MAX_GENERATING_TURNS_PER_CLIENT: '0',
    RESPONSE_TIMEOUT_SECONDS: '3600',
    SSE_STALL_TIMEOUT_SECONDS: '600',
    LOG_LEVEL: 'warn',
    NODE_ENV: 'production',
  };
  const listening = /listening|Server listening/;
  const chatwaitEnv = { ...common, LOG_LEVEL: 'info', OPENAI_BASE_URL: `${upstreamUrl}/v1`, OPENAI_MODEL: 'bench' };
  await start(
    'dist/main.js',
    [],
    { ...chatwaitEnv, PORT: String(chatwaitPort), DATABASE_URL: `sqlite:${join(data, 'bench.db')}` },
    listening,
  );
  await start(
    'dist/main.js',
    [],
    {
      ...common,
      LOG_LEVEL: 'info',
      PORT: String(demoPort),
      LLM_PROVIDER: 'demo',
      DEMO_TOKENS_PER_SECOND: '0',
      DATABASE_URL: `sqlite:${join(data, 'demo.db')}`,
    },
    listening,
  );
  await start('bench/relay.mjs', [String(relayPort), `${upstreamUrl}/v1`]);
  const targets = { chatwait: `http://127.0.0.1:${chatwaitPort}`, relay: `http://127.0.0.1:${relayPort}` };
  const postgres = flags.store === 'postgres' ? await startPostgresTargets({ chatwaitEnv, common, listening }) : undefined;
  const results = {};
  const wants = (id) => !only || only.has(id);
  const both = async (scenario) => ({
    chatwait: await runLoad({ ...scenario, url: targets.chatwait }),
    relay: await runLoad({ ...scenario, url: targets.relay }),
  });

  if (wants('P1') || wants('P2')) {
    // One stream's time to first token does not depend on the answer's length: short answers give
    // 300 samples in a minute, so the p99 is not just the slowest of a handful.
    await configureUpstream(upstreamUrl, 10, load.rate);
    results.oneStream = await both({ kind: 'streams', concurrency: 1, rounds: smoke ? 5 : 300 });
    if (postgres)
      results.oneStreamPostgres = await runLoad({ kind: 'streams', concurrency: 1, rounds: smoke ? 5 : 300, url: postgres.chatwait });
    await configureUpstream(upstreamUrl, load.tokens, load.rate);
    results.loaded = await both({ kind: 'streams', concurrency: load.streams });
    await configureUpstream(upstreamUrl, load.throughputTokens, 0);
    results.throughput = await both({ kind: 'streams', concurrency: load.throughputStreams });
  }
  if (wants('P3')) {
    await configureUpstream(upstreamUrl, load.tokens, load.rate);
    results.rise = [];
    for (const concurrency of load.rise) results.rise.push({ concurrency, ...(await both({ kind: 'streams', concurrency })) });
  }
  if (wants('P3') || wants('P3-idle')) {
    await configureUpstream(upstreamUrl, 1000, 0.001);
    // Fresh processes: RSS after the rise says more about the heap the rise left than about idle streams.
    const [idleChatwaitPort, idleRelayPort] = await Promise.all([freePort(), freePort()]);
    const idleChatwait = await start(
      'dist/main.js',
      [],
      { ...chatwaitEnv, PORT: String(idleChatwaitPort), DATABASE_URL: `sqlite:${join(data, 'idle.db')}` },
      listening,
    );
    const idleRelay = await start('bench/relay.mjs', [String(idleRelayPort), `${upstreamUrl}/v1`]);
    results.idle = {
      chatwait: await idleMemory(`http://127.0.0.1:${idleChatwaitPort}`, idleChatwait.pid, load.idle),
      relay: await idleMemory(`http://127.0.0.1:${idleRelayPort}`, idleRelay.pid, load.idle),
    };
    for (const child of [idleChatwait, idleRelay]) child.kill('SIGKILL');
  }
  if (wants('P4')) {
    await configureUpstream(upstreamUrl, 60, 0);
    results.wait = {
      demo: await runLoad({ kind: 'wait', url: `http://127.0.0.1:${demoPort}`, connections: 64, seconds: load.seconds }),
      chatwait: await runLoad({ kind: 'wait', url: targets.chatwait, connections: 64, seconds: load.seconds }),
      relay: await runLoad({ kind: 'wait', url: targets.relay, connections: 64, seconds: load.seconds }),
      // The same load on a route that does nothing: what the framework and the load generator allow here.
      ceiling: await runLoad({
        kind: 'wait',
        url: `http://127.0.0.1:${demoPort}`,
        path: '/api/v1/health/live',
        connections: 64,
        seconds: load.seconds,
      }),
    };
    if (postgres) {
      results.waitPostgres = {
        demo: await runLoad({ kind: 'wait', url: postgres.demo, connections: 64, seconds: load.seconds }),
        chatwait: await runLoad({ kind: 'wait', url: postgres.chatwait, connections: 64, seconds: load.seconds }),
      };
    }
  }
  if (wants('P5')) {
    await configureUpstream(upstreamUrl, load.resumeTokens, 0);
    const first = await runLoad({ kind: 'streams', url: targets.chatwait, concurrency: 1 });
    const turnId = await latestTurnId(targets.chatwait);
    // The resume cost is one reconnect's (one after another); 10 at a time shows it under a storm.
    const resume = (concurrency) => runLoad({ kind: 'resume', url: targets.chatwait, turnId, reconnects: load.reconnects, concurrency });
    results.resume = { chatwait: await resume(1), storm: await resume(10), answerTokens: first.tokens };
  }
  if (flags.redis === 'true' || only?.has('P6')) {
    const bench = { start, runLoad, freePort, configureUpstream, upstreamUrl, chatwaitEnv, listening, cleanups, load, smoke };
    results.P6 = await runRedisScale(bench);
  }

  const report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    load,
    results,
  };
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(join(root, 'bench/results/latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  printTable(results);
  if (results.P6) printRedisTable(results.P6);
  const failures = collectFailures(results);
  if (failures.length > 0) {
    console.error(`\nFAILED: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

/** Starts PostgreSQL and two ChatWait processes on it (fake upstream, demo model), as the SQLite ones are started. */
async function startPostgresTargets({ chatwaitEnv, common, listening }) {
  const bin = findPostgresBin();
  if (!bin) throw new Error('--store=postgres needs PostgreSQL (apt-get install postgresql)');
  const server = await startLocalPostgres(bin);
  cleanups.push(() => server.stop());
  const [chatwaitPort, demoPort] = await Promise.all([freePort(), freePort()]);
  const database = (name) => server.adminUrl.replace(/\/postgres$/, `/${name}`);
  // Two processes creating their schema in separate databases: postgres's own is kept for this.
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE bench');
  await admin.query('CREATE DATABASE demo');
  await admin.end();
  await start('dist/main.js', [], { ...chatwaitEnv, PORT: String(chatwaitPort), DATABASE_URL: database('bench') }, listening);
  await start(
    'dist/main.js',
    [],
    {
      ...common,
      LOG_LEVEL: 'info',
      PORT: String(demoPort),
      LLM_PROVIDER: 'demo',
      DEMO_TOKENS_PER_SECOND: '0',
      DATABASE_URL: database('demo'),
    },
    listening,
  );
  return { chatwait: `http://127.0.0.1:${chatwaitPort}`, demo: `http://127.0.0.1:${demoPort}` };
}

/** The conversation list gives the newest turn's id (the one the resume scenario replays). */
async function latestTurnId(url) {
  const list = await (await fetch(`${url}/api/v1/conversations?limit=1`)).json();
  const conversation = await (await fetch(`${url}/api/v1/conversations/${list.conversations[0].context_id}`)).json();
  return conversation.turns.at(-1).turn_id;
}

function collectFailures(results) {
  const failures = [];
  const visit = (value, path) => {
    if (value && typeof value === 'object') {
      if (typeof value.failures === 'number' && value.failures > 0)
        failures.push(`${path}: ${value.failures} failed${value.errors ? ` (${value.errors.join(', ')})` : ''}`);
      for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`);
    }
  };
  visit(results, 'results');
  return failures;
}

function printTable(results) {
  const rows = [];
  const add = (id, figure, target, ours, theirs, met) =>
    rows.push({
      id,
      figure,
      target,
      chatwait: ours,
      relay: theirs,
      ratio: typeof ours === 'number' && typeof theirs === 'number' ? ratio(ours, theirs) : '',
      met: met === undefined ? '' : met ? 'yes' : 'no',
    });
  if (results.oneStream) {
    const one = results.oneStream;
    add(
      'P1',
      `added TTFT, 1 stream (${one.chatwait.streams} answers), p50 (ms)`,
      '≤ 1',
      round(one.chatwait.firstTokenAdded.p50),
      round(one.relay.firstTokenAdded.p50),
      one.chatwait.firstTokenAdded.p50 <= 1,
    );
    add(
      'P1',
      `added TTFT, 1 stream (${one.chatwait.streams} answers), p99 (ms)`,
      '≤ 5',
      round(one.chatwait.firstTokenAdded.p99),
      round(one.relay.firstTokenAdded.p99),
      one.chatwait.firstTokenAdded.p99 <= 5,
    );
    const onPostgres = results.oneStreamPostgres;
    if (onPostgres) {
      // The goal for PostgreSQL is relative to SQLite in the same run: at most 2 ms more at p50.
      add(
        'P1',
        'the same on PostgreSQL, p50 / p99 (ms)',
        '≤ SQLite p50 + 2',
        `${round(onPostgres.firstTokenAdded.p50)} / ${round(onPostgres.firstTokenAdded.p99)}`,
        round(one.relay.firstTokenAdded.p50),
        onPostgres.firstTokenAdded.p50 <= one.chatwait.firstTokenAdded.p50 + 2,
      );
    }
    const loaded = results.loaded;
    add(
      'P1',
      `added TTFT, ${load.streams} streams, p99 (ms)`,
      '≤ 20',
      round(loaded.chatwait.firstTokenAdded.p99),
      round(loaded.relay.firstTokenAdded.p99),
      loaded.chatwait.firstTokenAdded.p99 <= 20,
    );
    add(
      'P2',
      `added per-token delay, ${load.streams} streams, p99 (ms)`,
      '≤ 5',
      round(loaded.chatwait.tokenAdded.p99),
      round(loaded.relay.tokenAdded.p99),
      loaded.chatwait.tokenAdded.p99 <= 5,
    );
    const throughput = results.throughput;
    add(
      'P2',
      'tokens/s relayed, as fast as possible',
      '≥ 100k and ≥ 0.5 × relay',
      Math.round(throughput.chatwait.tokensPerSecond),
      Math.round(throughput.relay.tokensPerSecond),
      throughput.chatwait.tokensPerSecond >= 100_000 && throughput.chatwait.tokensPerSecond >= 0.5 * throughput.relay.tokensPerSecond,
    );
  }
  if (results.rise) {
    const onTime = (run) => run.failures === 0 && run.tokenAdded.p99 < 50;
    const most = (who) => Math.max(0, ...results.rise.filter((step) => onTime(step[who])).map((step) => step.concurrency));
    add('P3', 'most generating streams on time (added p99 < 50 ms)', '≥ 2,000', most('chatwait'), most('relay'), most('chatwait') >= 2000);
  }
  if (results.idle) {
    const idle = results.idle;
    add(
      'P3',
      `RSS per idle stream, ${load.idle} open (KB)`,
      '≤ 2 × relay',
      round(idle.chatwait.bytesPerStream / 1024, 1),
      round(idle.relay.bytesPerStream / 1024, 1),
      idle.chatwait.bytesPerStream <= 2 * idle.relay.bytesPerStream,
    );
  }
  if (results.wait) {
    add(
      'P4',
      '/chat/wait req/s, demo model, 64 connections',
      '≥ 10,000',
      Math.round(results.wait.demo.requestsPerSecond),
      Math.round(results.wait.relay.requestsPerSecond),
      results.wait.demo.requestsPerSecond >= 10_000,
    );
    add(
      'P4',
      '/chat/wait req/s, fake upstream (60 tokens)',
      '',
      Math.round(results.wait.chatwait.requestsPerSecond),
      Math.round(results.wait.relay.requestsPerSecond),
    );
    add('P4', 'ceiling: GET /api/v1/health/live req/s, same load', '', Math.round(results.wait.ceiling.requestsPerSecond), '');
  }
  if (results.waitPostgres) {
    add(
      'P4',
      '/chat/wait req/s, demo model, on PostgreSQL',
      '',
      Math.round(results.waitPostgres.demo.requestsPerSecond),
      Math.round(results.wait.relay.requestsPerSecond),
    );
    add(
      'P4',
      '/chat/wait req/s, fake upstream, on PostgreSQL',
      '',
      Math.round(results.waitPostgres.chatwait.requestsPerSecond),
      Math.round(results.wait.relay.requestsPerSecond),
    );
  }
  if (results.resume) {
    const { chatwait, storm, answerTokens } = results.resume;
    add(
      'P5',
      `first replayed token after reconnect, ${answerTokens}-token answer, p99 (ms)`,
      '≤ 5',
      round(chatwait.firstReplayed.p99),
      'n/a (no resume)',
      chatwait.firstReplayed.p99 <= 5,
    );
    add(
      'P5',
      `the same, 10 reconnects at a time, p50 / p99 (ms)`,
      '',
      `${round(storm.firstReplayed.p50)} / ${round(storm.firstReplayed.p99)}`,
      'n/a',
    );
  }
  if (rows.length === 0) return;
  const columns = ['id', 'figure', 'target', 'chatwait', 'relay', 'ratio', 'met'];
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => String(row[column]).length)));
  const line = (cells) => `| ${cells.map((cell, index) => String(cell).padEnd(widths[index])).join(' | ')} |`;
  console.log(line(columns));
  console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
  for (const row of rows) console.log(line(columns.map((column) => row[column])));
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill('SIGKILL');
    for (const cleanup of cleanups) cleanup();
  });
