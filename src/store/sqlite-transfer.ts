import type { Database } from 'better-sqlite3';
import { importedTurn, type ConversationRecord, type ImportResult } from './conversation-store.js';
import { conflictsWith, turnValues } from './sql-rows.js';

/** The context ids of up to `limit` conversations after `after`, in order: the pages of a whole-store copy. */
export function sqliteConversationIds(database: Database, options: { after?: string | undefined; limit: number }): string[] {
  const rows = database
    .prepare('SELECT context_id FROM conversations WHERE context_id > ? ORDER BY context_id LIMIT ?')
    .all(options.after ?? '', options.limit) as { context_id: string }[];
  return rows.map((row) => row.context_id);
}

/** Adds a conversation copied from another store (see ConversationStore.importConversation), in one transaction. */
export function importSqliteConversation(database: Database, copy: ConversationRecord): ImportResult {
  const insertConversation = database.prepare(
    'INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (context_id) DO NOTHING',
  );
  const insertTurn =
    database.prepare(`INSERT INTO turns (turn_id, context_id, sequence, user_message, answer, status, model, created_at, finished_at,
      usage, timings, error_code, client_message_id, token_count, tool_steps)
    VALUES (?, ?, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM turns WHERE context_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (turn_id) DO NOTHING`);
  const usedClientMessageIds = database.prepare(
    'SELECT client_message_id, turn_id FROM turns WHERE context_id = ? AND client_message_id IS NOT NULL',
  );
  return database.transaction((): ImportResult => {
    const created =
      insertConversation.run(copy.contextId, copy.owner, copy.title, copy.createdAt.getTime(), copy.updatedAt.getTime()).changes > 0;
    const used = usedClientMessageIds.all(copy.contextId) as { client_message_id: string; turn_id: string }[];
    const isSkipped = conflictsWith(used);
    let turnsAdded = 0;
    let turnsSkipped = 0;
    for (const original of copy.turns) {
      if (isSkipped(original)) {
        turnsSkipped++;
        continue;
      }
      const [turnId, contextId, ...rest] = turnValues(importedTurn(original), copy.contextId);
      // The conversation's id twice: once for its column, once for the sequence's subquery.
      turnsAdded += insertTurn.run(turnId, contextId, contextId, ...rest).changes;
    }
    return { created, turnsAdded, turnsSkipped };
  })();
}
