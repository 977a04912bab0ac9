import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';

/**
 * A real full disk: a 2 MiB tmpfs holding the SQLite file, filled by a filler file. Mounting needs root;
 * CI runs as root, so there the test must run; elsewhere it is skipped, loudly.
 */
function mountSmallDisk(): string | undefined {
  const folder = mkdtempSync(join(tmpdir(), 'chatwait-full-disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', folder], { stdio: 'pipe' });
    return folder;
  } catch (error) {
    rmdirSync(folder);
    if (process.env.CI === 'true')
      throw new Error(`CI must run the full-disk test, but mounting a tmpfs failed: ${String(error)}`, { cause: error });
    console.warn(`SKIPPED: the full-disk test needs root to mount a tmpfs (${String(error).split('\n')[0]})`);
    return undefined;
  }
}

/** Writes a file until the disk has no byte left; returns its path. */
function fillDisk(folder: string): string {
  const path = join(folder, 'filler');
  const descriptor = openSync(path, 'w');
  for (const size of [65536, 4096, 512, 1]) {
    try {
      for (;;) writeSync(descriptor, Buffer.alloc(size, 1));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
  }
  closeSync(descriptor);
  return path;
}

const disk = mountSmallDisk();
const servers: TestServer[] = [];
afterAll(async () => {
  for (const server of servers.splice(0)) await server.close();
  if (disk) {
    execFileSync('umount', [disk]);
    rmdirSync(disk);
  }
});

describe.skipIf(!disk)('a SQLite file on a disk that fills up', () => {
  it('reports degraded and not ready while sends fail with 503, and healthy again by itself once space is freed', async () => {
    const server = await startTestServer({ DATABASE_URL: `sqlite:${join(disk!, 'chat.db')}` });
    servers.push(server);
    const first = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'answer in 5 tokens', context_id: 'disk' });
    expect(first.status).toBe(200);
    expect((await getJson(`${server.url}/health`)).body.status).toBe('healthy');

    const filler = fillDisk(disk!);
    // Each commit appends to the write-ahead log, so storing this turn needs new disk space.
    const message = 'answer in 5 tokens, please';
    const refused = await postJson(`${server.url}/api/v1/chat/wait`, { message, context_id: 'disk' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error_code: 'STORE_UNAVAILABLE' });
    // No turn outcome is pending (the turn never started): the store itself must say that writes fail.
    const degraded = await getJson(`${server.url}/health`);
    expect(degraded.body).toMatchObject({ status: 'degraded', checks: { store: { status: 'error' } } });
    expect((await getJson(`${server.url}/api/v1/health/ready`)).status).toBe(503);

    unlinkSync(filler);
    // No send in between: the health check's own write finds that writes work again.
    expect((await getJson(`${server.url}/health`)).body).toMatchObject({ status: 'healthy', checks: { store: { status: 'ok' } } });
    expect((await getJson(`${server.url}/api/v1/health/ready`)).status).toBe(200);
    const again = await postJson(`${server.url}/api/v1/chat/wait`, { message, context_id: 'disk' });
    expect(again.status).toBe(200);
  });
});
