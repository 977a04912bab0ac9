import type pg from 'pg';
import { importedTurn, type ConversationRecord, type ImportResult } from './conversation-store.js';
import type { TransactionClient } from './postgres-pool.js';
import { toStoredText } from './postgres-text.js';
import { turnValues } from './sql-rows.js';

/** The context ids of up to `limit` conversations after `after`, in order: the pages of a whole-store copy. */
export async function postgresConversationIds(pool: pg.Pool, options: { after?: string | undefined; limit: number }): Promise<string[]> {
  const { rows } = await pool.query<{ context_id: string }>(
    'SELECT context_id FROM conversations WHERE context_id > $1 ORDER BY context_id LIMIT $2',
    [options.after ?? '', options.limit],
  );
  return rows.map((row) => row.context_id);
}

/** Adds a conversation copied from another store (see ConversationStore.importConversation) with the client given, inside its transaction. */
export async function importPostgresConversation(client: TransactionClient, copy: ConversationRecord): Promise<ImportResult> {
  const conversation = await client.query(
    'INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (context_id) DO NOTHING',
    [copy.contextId, copy.owner, copy.title, copy.createdAt.getTime(), copy.updatedAt.getTime()],
  );
  // Taken after the insert: the row exists either way, and its lock keeps sequence numbers in order against a concurrent start.
  await client.query('SELECT 1 FROM conversations WHERE context_id = $1 FOR UPDATE', [copy.contextId]);
  let turnsAdded = 0;
  for (const original of copy.turns) {
    const inserted = await client.query(
      `INSERT INTO turns (turn_id, context_id, sequence, user_message, answer, status, model, created_at, finished_at,
         usage, timings, error_code, client_message_id, token_count, tool_steps)
       VALUES ($1, $2, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM turns WHERE context_id = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
       ON CONFLICT (turn_id) DO NOTHING`,
      turnValues(importedTurn(original), copy.contextId, toStoredText),
    );
    turnsAdded += inserted.rowCount ?? 0;
  }
  return { created: (conversation.rowCount ?? 0) > 0, turnsAdded };
}
