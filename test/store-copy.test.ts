import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PostgresConversationStore } from '../src/store/postgres-store.js';
import { SqliteConversationStore } from '../src/store/sqlite-store.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';

const run = promisify(execFile);
const COPY = join(import.meta.dirname, '..', 'dist', 'admin', 'store-copy-main.js');

async function copy(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [COPY, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code: number; stdout: string; stderr: string };
    return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
  }
}

/** A SQLite file with 150 conversations (more than one page of the copy), two owners, tool steps and usage. */
async function filledSqlite(): Promise<string> {
  const path = join(mkdtempSync(join(tmpdir(), 'chatwait-copy-')), 'chat.db');
  const store = new SqliteConversationStore(path);
  for (let index = 0; index < 150; index++) {
    const contextId = `conversation-${String(index).padStart(3, '0')}`;
    for (let turn = 0; turn < 2; turn++) {
      const { turnId } = await store.startTurn({
        turnId: `${contextId}-turn-${turn}`,
        contextId,
        userMessage: `question ${turn} of ${index}`,
        model: 'demo',
        clientMessageId: turn === 0 ? `send-${index}` : undefined,
        owner: index % 2 === 0 ? null : 'owner-digest',
      });
      await store.finishTurn(turnId, {
        status: 'complete',
        answer: `answer ${turn} of ${index}`,
        usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
        timings: { ttft_ms: 1, total_ms: 5 },
        errorCode: undefined,
        tokenCount: 4,
        toolSteps:
          index === 7
            ? [
                {
                  callId: 'c1',
                  name: 'calculate',
                  arguments: '{"expression":"2+2"}',
                  output: '4',
                  isError: false,
                  durationMs: 1,
                  tokenOffset: 0,
                },
              ]
            : [],
      });
    }
  }
  await store.renameConversation('conversation-007', 'Sums');
  await store.close();
  return `sqlite:${path}`;
}

describe.skipIf(!hasPostgres())('npm run store:copy', () => {
  it('copies every conversation from SQLite to PostgreSQL once, however often it runs', async () => {
    const from = await filledSqlite();
    const to = await createTestDatabase('copy');
    const first = await copy('--from', from, '--to', to);
    expect(first).toMatchObject({ code: 0 });
    expect(first.stdout).toBe('Copied 150 conversations (150 new), 300 turns copied, 0 already there.\n');
    expect(first.stderr).toContain('… 100 conversations');

    const second = await copy('--from', from, '--to', to);
    expect(second.stdout).toBe('Copied 150 conversations (0 new), 0 turns copied, 300 already there.\n');

    const source = new SqliteConversationStore(from.slice('sqlite:'.length));
    const target = await PostgresConversationStore.open(to);
    try {
      for (const id of ['conversation-000', 'conversation-007', 'conversation-149']) {
        expect(await target.getConversation(id)).toEqual(await source.getConversation(id));
      }
      expect((await target.listConversations({ owner: 'owner-digest', limit: 100 })).conversations).toHaveLength(75);
      expect((await target.findTurnByClientMessageId('conversation-042', 'send-42'))?.answer).toBe('answer 0 of 42');
    } finally {
      await Promise.all([source.close(), target.close()]);
    }
  });

  it('says what is wrong with its arguments or a store it cannot open', async () => {
    expect(await copy('--from', 'sqlite:x.db')).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('both --from and --to are needed'),
    });
    expect(await copy('--from', 'memory', '--to', 'memory')).toMatchObject({ code: 2 });
    const unreachable = await copy('--from', 'memory', '--to', 'postgres://user:secret@127.0.0.1:1/none');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('DATABASE_URL=postgres://user:***@127.0.0.1:1/none');
    expect(unreachable.stderr).not.toContain('secret');
  });
});
