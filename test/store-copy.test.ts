import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
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

  it('skips a turn whose client_message_id the target gave another turn, copies the rest, and writes no instances row', async () => {
    const from = await filledSqlite();
    const to = await createTestDatabase('copyconflict');
    // The target already has conversation-005, whose first send (send-5) reached it under another turn id.
    const target = await PostgresConversationStore.open(to);
    const { turnId } = await target.startTurn({
      turnId: 'target-turn',
      contextId: 'conversation-005',
      userMessage: 'sent to PostgreSQL',
      model: 'demo',
      clientMessageId: 'send-5',
      owner: 'owner-digest',
    });
    await target.finishTurn(turnId, {
      status: 'complete',
      answer: 'here',
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 1,
    });
    await target.close();
    // Every write to the instances table, as the copy runs: an admin tool is not an instance.
    const database = new pg.Client({ connectionString: to });
    await database.connect();
    try {
      await database.query(`CREATE TABLE instance_writes (instance_id TEXT);
        CREATE FUNCTION log_instance_write() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO instance_writes VALUES (NEW.instance_id); RETURN NEW; END $$;
        CREATE TRIGGER log_instance_write AFTER INSERT OR UPDATE ON instances FOR EACH ROW EXECUTE FUNCTION log_instance_write();`);

      const result = await copy('--from', from, '--to', to);
      expect(result).toMatchObject({ code: 0 });
      expect(result.stdout).toBe(
        'Copied 150 conversations (149 new), 299 turns copied, 0 already there; skipped 1 turn whose client_message_id already exists in the target.\n',
      );
      const again = await copy('--from', from, '--to', to);
      expect(again.stdout).toBe(
        'Copied 150 conversations (0 new), 0 turns copied, 299 already there; skipped 1 turn whose client_message_id already exists in the target.\n',
      );

      const { rows } = await database.query<{ turn_id: string; client_message_id: string | null }>(
        "SELECT turn_id, client_message_id FROM turns WHERE context_id = 'conversation-005' ORDER BY sequence",
      );
      expect(rows).toEqual([
        { turn_id: 'target-turn', client_message_id: 'send-5' },
        { turn_id: 'conversation-005-turn-1', client_message_id: null },
      ]);
      expect((await database.query('SELECT * FROM instance_writes')).rows).toEqual([]);
      expect((await database.query('SELECT * FROM instances')).rows).toEqual([]);
    } finally {
      await database.end();
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
