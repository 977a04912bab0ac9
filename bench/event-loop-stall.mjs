// How long one GET of a huge conversation stalls every other request: ChatWait (dist/main.js, or the
// build named by --main=) on a SQLite file holding one conversation of --turns turns of --chars
// characters each (~48 MB by default), probed on /api/v1/health/live back to back while the
// conversation is fetched --fetches times. Loopback only; the server is killed at the end.
//
//   node bench/event-loop-stall.mjs [--main=dist/main.js] [--turns=2000] [--chars=24000] [--fetches=3] [--query=limit=100]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

const options = Object.fromEntries(process.argv.slice(2).map((argument) => argument.replace(/^--/, '').split(/=(.*)/s).slice(0, 2)));
const main = resolve(options.main ?? 'dist/main.js');
const turns = Number(options.turns ?? 2000);
const chars = Number(options.chars ?? 24_000);
const fetches = Number(options.fetches ?? 3);
const query = options.query ? `?${options.query}` : '';

const directory = mkdtempSync(join(tmpdir(), 'chatwait-stall-'));
const path = join(directory, 'chat.db');
const child = spawn(process.execPath, [main], {
  cwd: directory,
  env: {
    PATH: process.env.PATH ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: `sqlite:${path}`,
    RATE_LIMIT_REQUESTS_PER_MINUTE: '0',
    LOG_LEVEL: 'info',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const killTimer = setTimeout(() => {
  console.error('gave up after 5 minutes');
  child.kill('SIGKILL');
  process.exit(1);
}, 300_000);
try {
  const url = await new Promise((resolveUrl, reject) => {
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/[^\s"]+)/.exec(output);
      if (match) resolveUrl(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
  });

  // The server has created the schema; the rows go in from here (WAL: the server sees them on its next read).
  const database = new BetterSqlite3(path);
  const now = Date.now();
  database
    .prepare('INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES (?, NULL, ?, ?, ?)')
    .run('huge', 'Huge', now, now);
  const insert =
    database.prepare(`INSERT INTO turns (turn_id, context_id, sequence, user_message, answer, status, model, created_at, finished_at, token_count)
    VALUES (?, 'huge', ?, ?, ?, 'complete', 'chatwait-demo', ?, ?, 100)`);
  database.transaction(() => {
    for (let sequence = 1; sequence <= turns; sequence++) {
      insert.run(
        `turn-${sequence}`,
        sequence,
        `question ${sequence}`,
        `answer ${sequence} `.padEnd(chars, 'lorem ipsum '),
        now + sequence,
        now + sequence,
      );
    }
  })();
  database.pragma('wal_checkpoint(TRUNCATE)');
  database.close();
  console.log(`main: ${main}`);
  console.log(`database: ${(statSync(path).size / 1e6).toFixed(1)} MB, one conversation of ${turns} turns of ${chars} characters`);

  const probe = async () => {
    const started = performance.now();
    await (await fetch(`${url}/api/v1/health/live`)).text();
    return performance.now() - started;
  };
  for (let index = 0; index < 20; index++) await probe();
  const idle = [];
  for (let index = 0; index < 100; index++) idle.push(await probe());
  console.log(`idle: /health/live max ${Math.max(...idle).toFixed(1)} ms over ${idle.length} probes`);

  for (let attempt = 1; attempt <= fetches; attempt++) {
    let done = false;
    const latencies = [];
    const probing = (async () => {
      while (!done) latencies.push(await probe());
    })();
    const started = performance.now();
    const response = await fetch(`${url}/api/v1/conversations/huge${query}`);
    const body = await response.arrayBuffer();
    const fetchMs = performance.now() - started;
    done = true;
    await probing;
    console.log(
      `fetch ${attempt}: GET /api/v1/conversations/huge${query} → ${response.status}, ${(body.byteLength / 1e6).toFixed(2)} MB in ${fetchMs.toFixed(0)} ms; ` +
        `/health/live meanwhile: max ${Math.max(...latencies).toFixed(1)} ms over ${latencies.length} probes`,
    );
  }
} finally {
  clearTimeout(killTimer);
  child.kill('SIGKILL');
  rmSync(directory, { recursive: true, force: true });
}
