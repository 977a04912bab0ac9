// The load generator: reads SSE as a real client does (sse-read.mjs: parses every event, checks
// token order and that the joined tokens equal final_output), so a server that drops or repeats
// tokens fails the run instead of winning it. Usage: node bench/load.mjs '<scenario JSON>' → one JSON line of results.
import http from 'node:http';
import { crossResume, pair } from './load-redis.mjs';
import { agent, percentile, readStream } from './sse-read.mjs';

const scenario = JSON.parse(process.argv[2]);

async function streams({ url, concurrency, rounds = 1 }) {
  const firstAdded = [];
  const tokenAdded = [];
  let tokens = 0;
  let failures = 0;
  const errors = new Set();
  const started = performance.now();
  let next = 0;
  const total = concurrency * rounds;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const index = next++;
        try {
          const result = await readStream(`${url}/api/v1/chat/streaming?message=bench%20${index}`);
          tokens += result.tokens;
          if (result.firstAdded !== null) firstAdded.push(result.firstAdded);
          for (const value of result.added) tokenAdded.push(value);
        } catch (error) {
          failures++;
          errors.add(error.message);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    streams: total,
    failures,
    errors: [...errors].slice(0, 5),
    seconds,
    tokens,
    tokensPerSecond: tokens / seconds,
    firstTokenAdded: { p50: percentile(firstAdded, 50), p99: percentile(firstAdded, 99) },
    tokenAdded: { p50: percentile(tokenAdded, 50), p99: percentile(tokenAdded, 99) },
  };
}

/** Requests as fast as `connections` keep-alive connections allow: POST /chat/wait, or `path` with GET (a ceiling to compare with). */
async function wait({ url, connections, seconds, path }) {
  let ok = 0;
  let failures = 0;
  const errors = new Set();
  const deadline = performance.now() + seconds * 1000;
  const latencies = [];
  const post = () =>
    new Promise((resolve) => {
      const body = '{"message":"bench"}';
      const started = performance.now();
      const options = path
        ? { method: 'GET', agent }
        : { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } };
      const request = http.request(`${url}${path ?? '/api/v1/chat/wait'}`, options, (response) => {
        response.resume();
        response.on('end', () => {
          if (response.statusCode === 200) ok++;
          else {
            failures++;
            errors.add(`status ${response.statusCode}`);
          }
          latencies.push(performance.now() - started);
          resolve();
        });
      });
      request.on('error', (error) => {
        failures++;
        errors.add(error.message);
        resolve();
      });
      request.end(path ? undefined : body);
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await post();
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return {
    requests: ok,
    failures,
    errors: [...errors].slice(0, 5),
    seconds: elapsed,
    requestsPerSecond: ok / elapsed,
    latency: { p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
  };
}

async function resume({ url, turnId, reconnects, concurrency }) {
  const firstReplayed = [];
  let failures = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < reconnects) {
        next++;
        try {
          await readStream(`${url}/api/v1/chat/streaming?message=resume`, { 'last-event-id': `${turnId}/start` }, (milliseconds) =>
            firstReplayed.push(milliseconds),
          );
        } catch {
          failures++;
        }
      }
    }),
  );
  return { reconnects, failures, firstReplayed: { p50: percentile(firstReplayed, 50), p99: percentile(firstReplayed, 99) } };
}

/**
 * Opens `count` streams that stay open (the upstream is told to be slow), at most `opening` being set
 * up at once as clients arriving over a few seconds would, reports when all started, and holds them
 * until stdin closes.
 */
async function idle({ url, count, opening = 500 }) {
  let open = 0;
  let failures = 0;
  const errors = new Set();
  const requests = [];
  let next = 0;
  const openOne = (index) =>
    new Promise((resolve) => {
      const request = http.get(`${url}/api/v1/chat/streaming?message=idle%20${index}`, { agent: false }, (response) => {
        if (response.statusCode !== 200) {
          failures++;
          errors.add(`status ${response.statusCode}`);
          return resolve();
        }
        response.once('data', () => {
          open++;
          resolve();
        });
        response.on('error', () => {});
      });
      request.on('error', (error) => {
        failures++;
        errors.add(error.message);
        resolve();
      });
      requests.push(request);
    });
  await Promise.all(
    Array.from({ length: Math.min(opening, count) }, async () => {
      while (next < count) await openOne(next++);
    }),
  );
  process.stdout.write(`${JSON.stringify({ open, failures, errors: [...errors].slice(0, 5) })}\n`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on('end', resolve));
  for (const request of requests) request.destroy();
  return undefined;
}

const run = { streams, wait, resume, idle, pair, crossResume }[scenario.kind];
const result = await run(scenario);
if (result) process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
