import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { findPostgresBin, startTestPostgres } from './postgres-server.js';
import { findRedisServer, startLocalRedis } from '../../scripts/local-redis.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The admin URL of the run's PostgreSQL, or '' when there is none (its tests then skip, loudly). */
    postgresAdminUrl: string;
    /** The URL of the run's Redis, or '' when there is none (its tests then skip, loudly). */
    redisUrl: string;
  }
}

/**
 * Builds dist/ (server and chat page) once, so tests run the real entry point and serve the real
 * page; points TMPDIR at one directory for the run (test databases, spawned servers' working
 * directories, browser profiles), removed at the end so runs leave nothing behind; and starts one
 * PostgreSQL for the run (each test file makes its own database in it), unless
 * CHATWAIT_TEST_POSTGRES_URL names one already running, and one Redis (each test its own key
 * prefix), unless CHATWAIT_TEST_REDIS_URL names one.
 */
/** What the run's setup made, made once however many test projects ask (they share the main process). */
interface RunResources {
  postgresAdminUrl: string;
  redisUrl: string;
  teardown: () => void;
}
// On globalThis: vitest loads this module once per test project, and the run must be prepared once.
const run = globalThis as { chatwaitRun?: { resources: Promise<RunResources>; users: number } };

async function prepareRun(): Promise<RunResources> {
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  let stopPostgres = () => {};
  let postgresAdminUrl = process.env.CHATWAIT_TEST_POSTGRES_URL ?? '';
  if (!postgresAdminUrl) {
    const bin = findPostgresBin();
    if (bin) {
      const postgres = await startTestPostgres(bin);
      postgresAdminUrl = postgres.adminUrl;
      stopPostgres = postgres.stop;
    } else if (process.env.CHATWAIT_REQUIRE_POSTGRES === '1') {
      throw new Error('CHATWAIT_REQUIRE_POSTGRES=1 but PostgreSQL is not installed (apt-get install postgresql)');
    }
  }
  let stopRedis = () => {};
  let redisUrl = process.env.CHATWAIT_TEST_REDIS_URL ?? '';
  if (!redisUrl) {
    const server = findRedisServer();
    if (server) {
      const redis = await startLocalRedis(server);
      redisUrl = redis.url;
      stopRedis = redis.stop;
    } else if (process.env.CHATWAIT_REQUIRE_REDIS === '1') {
      stopPostgres();
      throw new Error('CHATWAIT_REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)');
    }
  }
  const directory = mkdtempSync(join(tmpdir(), 'chatwait-tests-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = directory;
  return {
    postgresAdminUrl,
    redisUrl,
    teardown: () => {
      stopPostgres();
      stopRedis();
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

export default async function setup(project: TestProject): Promise<() => void> {
  run.chatwaitRun ??= { resources: prepareRun(), users: 0 };
  const shared = run.chatwaitRun;
  shared.users++;
  const { postgresAdminUrl, redisUrl, teardown } = await shared.resources;
  project.provide('postgresAdminUrl', postgresAdminUrl);
  project.provide('redisUrl', redisUrl);
  return () => {
    if (--shared.users === 0) teardown();
  };
}
