// P6 of performance.md (`npm run bench -- --redis`): two ChatWait processes on one Redis and one
// PostgreSQL (both started here on free loopback ports, like --store=postgres does), beside a
// single-node ChatWait on the same PostgreSQL without Redis, all on the same fake upstream, in the
// same run. Redis's own figures (commands, CPU, memory) are INFO deltas around each load.
import { Redis } from 'ioredis';
import { findPostgresBin, startLocalPostgres } from '../scripts/local-postgres.mjs';
import { findRedisServer, startLocalRedis } from '../scripts/local-redis.mjs';

/** Redis's counters: calls per command (INFO itself left out), CPU seconds, used_memory. */
async function redisCounters(redis) {
  const section = (text) =>
    Object.fromEntries(
      text
        .split('\r\n')
        .filter((line) => line.includes(':'))
        .map((line) => line.split(/:(.*)/s)),
    );
  const stats = section(await redis.info('commandstats'));
  const calls = {};
  for (const [key, value] of Object.entries(stats))
    if (key !== 'cmdstat_info') calls[key.replace('cmdstat_', '')] = Number(/calls=(\d+)/.exec(value)[1]);
  const cpu = section(await redis.info('cpu'));
  const memory = section(await redis.info('memory'));
  return {
    calls,
    cpuSeconds: Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user),
    usedMemory: Number(memory.used_memory),
  };
}

/**
 * Redis's counters once the producer's writes have caught up: a loaded producer's flushes can lag
 * its local readers by seconds, and they belong to the load that made them, not to the next one.
 * Quiet: fewer than 5 commands in 250 ms (the time-to-live refreshes go on); gives up after 120 s.
 */
async function quiet(redis) {
  const started = performance.now();
  let previous = await redisCounters(redis);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const current = await redisCounters(redis);
    const commands = Object.entries(current.calls).reduce((sum, [command, calls]) => sum + calls - (previous.calls[command] ?? 0), 0);
    if (commands < 5 || performance.now() - started > 120_000) return { ...current, waitedSeconds: (performance.now() - started) / 1000 };
    previous = current;
  }
}

/** What Redis did between two counter readings, per generated token. */
function redisDelta(before, after, tokens, seconds) {
  const byCommand = {};
  for (const [command, calls] of Object.entries(after.calls)) {
    const delta = calls - (before.calls[command] ?? 0);
    if (delta > 0) byCommand[command] = delta;
  }
  const commands = Object.values(byCommand).reduce((sum, value) => sum + value, 0);
  const cpuSeconds = after.cpuSeconds - before.cpuSeconds;
  return {
    commands,
    byCommand,
    commandsPerToken: tokens > 0 ? commands / tokens : null,
    // A script's own commands count in commandstats too; the calls of scripts are the flushes' round trips.
    scriptCallsPerToken: tokens > 0 ? ((byCommand.evalsha ?? 0) + (byCommand.eval ?? 0)) / tokens : null,
    cpuSeconds,
    cpuShare: seconds > 0 ? cpuSeconds / seconds : null,
    cpuMicrosecondsPerToken: tokens > 0 ? (cpuSeconds * 1e6) / tokens : null,
  };
}

/**
 * Runs P6 and returns its results. `bench` gives run.mjs's helpers (start, runLoad, freePort,
 * configureUpstream), the upstream's URL, the ChatWait environment and the loads.
 */
export async function runRedisScale(bench) {
  const { start, runLoad, freePort, configureUpstream, upstreamUrl, chatwaitEnv, listening, cleanups, load, smoke } = bench;
  const postgresBin = findPostgresBin();
  if (!postgresBin || !findRedisServer())
    throw new Error('--redis needs PostgreSQL and redis-server (apt-get install postgresql redis-server)');
  const redisServer = await startLocalRedis();
  cleanups.push(() => redisServer.stop());
  const postgres = await startLocalPostgres(postgresBin);
  cleanups.push(() => postgres.stop());
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: postgres.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE scale');
  await admin.query('CREATE DATABASE single');
  await admin.end();
  const database = (name) => postgres.adminUrl.replace(/\/postgres$/, `/${name}`);
  const [singlePort, aPort, bPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const window = load.redisWindowMs;
  // Nothing expires during the run, so the memory per retained turn is not thinned by expiries.
  const env = { ...chatwaitEnv, STREAM_TTL_SECONDS: '3600' };
  const scaled = { ...env, DATABASE_URL: database('scale'), REDIS_URL: redisServer.url, REDIS_WRITE_WINDOW_MS: String(window) };
  await start('dist/main.js', [], { ...env, PORT: String(singlePort), DATABASE_URL: database('single') }, listening);
  await start('dist/main.js', [], { ...scaled, PORT: String(aPort) }, listening);
  await start('dist/main.js', [], { ...scaled, PORT: String(bPort) }, listening);
  const single = `http://127.0.0.1:${singlePort}`;
  const producer = `http://127.0.0.1:${aPort}`;
  const other = `http://127.0.0.1:${bPort}`;
  const redis = new Redis(redisServer.url);
  cleanups.unshift(() => redis.disconnect());

  /** Runs a load on the producing instance and returns it with what Redis did meanwhile. */
  const measured = async (scenario) => {
    const before = await quiet(redis);
    const result = await runLoad({ url: producer, remoteUrl: other, ...scenario });
    const after = await quiet(redis);
    return {
      ...result,
      redis: {
        ...redisDelta(before, after, result.tokens ?? 0, (result.seconds ?? 0) + after.waitedSeconds),
        drainSeconds: after.waitedSeconds,
      },
    };
  };
  const both = async (scenario) => ({ single: await runLoad({ ...scenario, url: single }), redis: await measured(scenario) });
  const streams = load.redisStreams;
  const results = { windowMs: window, streams };

  await configureUpstream(upstreamUrl, 10, load.rate);
  results.oneStream = await both({ kind: 'streams', concurrency: 1, rounds: smoke ? 5 : 300 });
  await configureUpstream(upstreamUrl, load.tokens, load.rate);
  results.commandsOneStream = await measured({ kind: 'streams', concurrency: 1, rounds: smoke ? 1 : 3 });
  results.loaded = await both({ kind: 'streams', concurrency: streams });
  await configureUpstream(upstreamUrl, load.throughputTokens, 0);
  results.throughput = await both({ kind: 'streams', concurrency: load.throughputStreams });
  // Remote readers: one stream alone (short answers, many of them), then `streams` at once.
  await configureUpstream(upstreamUrl, 50, load.rate);
  results.pairOne = await measured({ kind: 'pair', concurrency: 1, rounds: smoke ? 3 : 30 });
  await configureUpstream(upstreamUrl, load.tokens, load.rate);
  results.pairLoaded = await measured({ kind: 'pair', concurrency: streams });
  // Resume on the other instance: of a turn still generating (long enough to outlast the resumes)…
  await configureUpstream(upstreamUrl, smoke ? 200 : 2000, 100);
  results.resumeRunning = await measured({ kind: 'crossResume', mode: 'running', reconnects: smoke ? 30 : 1000 });
  // …and of turns that just ended, each a fresh one, so the other instance reads it from Redis.
  await configureUpstream(upstreamUrl, load.tokens, 0);
  const retained = smoke ? 20 : 300;
  const beforeEnded = await quiet(redis);
  results.resumeEnded = await measured({ kind: 'crossResume', mode: 'ended', reconnects: retained });
  const afterEnded = await quiet(redis);
  results.memory = {
    turns: retained,
    tokensPerTurn: load.tokens,
    bytesPerTurn: (afterEnded.usedMemory - beforeEnded.usedMemory) / retained,
    usedMemoryAfter: afterEnded.usedMemory,
  };
  return results;
}

const round = (value, digits = 2) => (value === null || value === undefined ? null : Math.round(value * 10 ** digits) / 10 ** digits);

/** P6's rows: figure, goal, two instances, single-node, ratio, met. */
export function printRedisTable(p6) {
  const rows = [];
  const add = (figure, goal, ours, single, met) =>
    rows.push({
      id: 'P6',
      figure,
      goal,
      'two instances': ours,
      'single-node': single ?? '',
      ratio: typeof ours === 'number' && typeof single === 'number' && single > 0 ? round(ours / single) : '',
      met: met === undefined ? '' : met ? 'yes' : 'no',
    });
  const within = (ours, single) => ours <= 1.1 * single;
  const { oneStream, loaded, throughput } = p6;
  for (const p of ['p50', 'p99']) {
    const [ours, single] = [oneStream.redis.firstTokenAdded[p], oneStream.single.firstTokenAdded[p]];
    add(
      `producer's reader: added TTFT, 1 stream (${oneStream.redis.streams} answers), ${p} (ms)`,
      '≤ 1.1 × single',
      round(ours),
      round(single),
      within(ours, single),
    );
  }
  const [loadedOurs, loadedSingle] = [loaded.redis.firstTokenAdded.p99, loaded.single.firstTokenAdded.p99];
  add(
    `producer's reader: added TTFT, ${p6.streams} streams, p99 (ms)`,
    '≤ 1.1 × single',
    round(loadedOurs),
    round(loadedSingle),
    within(loadedOurs, loadedSingle),
  );
  add(
    `producer's reader: added per-token delay, ${p6.streams} streams, p99 (ms)`,
    '',
    round(loaded.redis.tokenAdded.p99),
    round(loaded.single.tokenAdded.p99),
  );
  const [rateOurs, rateSingle] = [throughput.redis.tokensPerSecond, throughput.single.tokensPerSecond];
  add(
    `producer's readers: tokens/s, as fast as possible`,
    '≥ single ÷ 1.1',
    Math.round(rateOurs),
    Math.round(rateSingle),
    rateOurs >= rateSingle / 1.1,
  );
  const goal = p6.windowMs + 5;
  for (const [name, run] of [
    ['1 stream', p6.pairOne],
    [`${p6.streams} streams`, p6.pairLoaded],
  ]) {
    const { p50, p99, samples } = run.remoteDelay;
    add(
      `other instance's reader: delay after the producer's reader, ${name} (${samples} tokens; ${run.busyRefusals} attaches refused 409 first), p50 / p99 (ms)`,
      `p99 ≤ ${goal}`,
      `${round(p50)} / ${round(p99)}`,
      '',
      p99 !== null && p99 <= goal,
    );
  }
  for (const [name, run] of [
    ['a running turn', p6.resumeRunning],
    ['a just-ended turn', p6.resumeEnded],
  ]) {
    const { p50, p99 } = run.firstToken;
    add(
      `resume on the other instance to first token, ${name} (${run.reconnects}), p50 / p99 (ms)`,
      'p99 ≤ 10',
      `${round(p50)} / ${round(p99)}`,
      '',
      p99 !== null && p99 <= 10,
    );
  }
  add(
    `Redis commands per generated token (commandstats, script-run ones included), 1 / ${p6.streams} streams`,
    '',
    `${round(p6.commandsOneStream.redis.commandsPerToken)} / ${round(loaded.redis.redis.commandsPerToken)}`,
    '',
  );
  const calls = (run) => round(run.redis.scriptCallsPerToken, 3);
  add(
    `of which append-script calls (one round trip per flush), 1 / ${p6.streams} streams`,
    '',
    `${calls(p6.commandsOneStream)} / ${calls(loaded.redis)}`,
    '',
  );
  add(
    `the same with a reader on the other instance too, 1 / ${p6.streams} streams`,
    '',
    `${round(p6.pairOne.redis.commandsPerToken)} / ${round(p6.pairLoaded.redis.commandsPerToken)}`,
    '',
  );
  const cpu = (run) => `${round(run.redis.cpuShare * 100, 1)} % (${round(run.redis.cpuMicrosecondsPerToken, 1)} µs/token)`;
  add(
    `Redis CPU: ${p6.streams} streams / as fast as possible / with remote readers`,
    '',
    `${cpu(loaded.redis)} / ${cpu(throughput.redis)} / ${cpu(p6.pairLoaded)}`,
    '',
  );
  add(
    `Redis writes still going on after the load ended (drain), ${p6.streams} streams / as fast as possible (s)`,
    '',
    `${round(loaded.redis.redis.drainSeconds, 1)} / ${round(throughput.redis.redis.drainSeconds, 1)}`,
    '',
  );
  add(`Redis used_memory per retained turn (${p6.memory.tokensPerTurn} tokens) (KB)`, '', round(p6.memory.bytesPerTurn / 1024, 1), '');
  const columns = ['id', 'figure', 'goal', 'two instances', 'single-node', 'ratio', 'met'];
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => String(row[column]).length)));
  const line = (cells) => `| ${cells.map((cell, index) => String(cell).padEnd(widths[index])).join(' | ')} |`;
  console.log(
    `\nP6: two instances on Redis (REDIS_WRITE_WINDOW_MS=${p6.windowMs}) + PostgreSQL; single-node: one instance on PostgreSQL, no Redis`,
  );
  console.log(line(columns));
  console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
  for (const row of rows) console.log(line(columns.map((column) => row[column])));
}
