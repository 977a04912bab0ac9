import type pg from 'pg';
import { importedTurn, type ConversationRecord, type ImportResult } from './conversation-store.js';
import type { TransactionClient } from './postgres-pool.js';
import { toStoredText } from './postgres-text.js';
import { conflictsWith, turnValues } from './sql-rows.js';

/** How many conversations an export reads at once: enough to overlap round trips, few enough to leave the pool to requests. */
export const EXPORT_CONCURRENCY = 4;

/** The context ids of up to `limit` conversations after `after`, in order: the pages of a whole-store copy. */
export async function postgresConversationIds(pool: pg.Pool, options: { after?: string | undefined; limit: number }): Promise<string[]> {
  const { rows } = await pool.query<{ context_id: string }>(
    'SELECT context_id FROM conversations WHERE context_id > $1 ORDER BY context_id LIMIT $2',
    [options.after ?? '', options.limit],
  );
  return rows.map((row) => row.context_id);
}

/** `read` applied to every id with at most `concurrency` calls in flight; the results keep the ids' order. */
export async function readInOrder<T>(ids: readonly string[], read: (id: string) => Promise<T>, concurrency: number): Promise<T[]> {
  const results = new Array<T>(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const index = next++;
      results[index] = await read(ids[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, worker));
  return results;
}

/** Adds a conversation copied from another store (see ConversationStore.importConversation) with the client given, inside its transaction. */
export async function importPostgresConversation(client: TransactionClient, copy: ConversationRecord): Promise<ImportResult> {
  const conversation = await client.query(
    'INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (context_id) DO NOTHING',
    [copy.contextId, copy.owner, copy.title, copy.createdAt.getTime(), copy.updatedAt.getTime()],
  );
  // Taken after the insert: the row exists either way, and its lock keeps sequence numbers in order against a concurrent start.
  await client.query('SELECT 1 FROM conversations WHERE context_id = $1 FOR UPDATE', [copy.contextId]);
  // Read under that lock: a send starting a turn in this conversation meanwhile waits for it.
  const used = await client.query<{ client_message_id: string; turn_id: string }>(
    'SELECT client_message_id, turn_id FROM turns WHERE context_id = $1 AND client_message_id IS NOT NULL',
    [copy.contextId],
  );
  const isSkipped = conflictsWith(used.rows);
  let turnsAdded = 0;
  let turnsSkipped = 0;
  for (const original of copy.turns) {
    if (isSkipped(original)) {
      turnsSkipped++;
      continue;
    }
    const inserted = await client.query(
      `INSERT INTO turns (turn_id, context_id, sequence, user_message, answer, status, model, created_at, finished_at,
         usage, timings, error_code, client_message_id, token_count, tool_steps)
       VALUES ($1, $2, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM turns WHERE context_id = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
       ON CONFLICT (turn_id) DO NOTHING`,
      turnValues(importedTurn(original), copy.contextId, toStoredText),
    );
    turnsAdded += inserted.rowCount ?? 0;
  }
  return { created: (conversation.rowCount ?? 0) > 0, turnsAdded, turnsSkipped };
}
