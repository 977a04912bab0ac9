import { titleFromMessage, type NewTurn, type ToolStep, type TurnOutcome } from './conversation-store.js';
import type { BoundedPool } from './postgres-bounded.js';
import { toStoredText } from './postgres-text.js';

// The writes of a turn's life in PostgreSQL: its start, its progress and its outcome. Every write after
// the start is fenced: it lands only while the turn is still `streaming` and still the writing instance's.

/** Inserts a new `streaming` turn of `instanceId`, creating its conversation (or touching it) first. */
export async function insertTurn(db: BoundedPool, turn: NewTurn, instanceId: string, now: number): Promise<void> {
  await db.transaction(async (client) => {
    // The upsert locks the conversation's row: two turns starting at once in one conversation take their sequence numbers in turn.
    await client.query(
      'INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (context_id) DO UPDATE SET updated_at = EXCLUDED.updated_at',
      [turn.contextId, turn.owner, titleFromMessage(turn.userMessage), now],
    );
    await client.query(
      `INSERT INTO turns (turn_id, context_id, sequence, user_message, status, model, created_at, client_message_id, instance_id)
       VALUES ($1, $2, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM turns WHERE context_id = $2), $3, 'streaming', $4, $5, $6, $7)`,
      [turn.turnId, turn.contextId, toStoredText(turn.userMessage), turn.model, now, turn.clientMessageId ?? null, instanceId],
    );
  });
}

/** Saves a generating turn's answer so far; false when the turn is no longer `instanceId`'s to write (fenced). */
export async function updateProgress(
  db: BoundedPool,
  instanceId: string,
  turnId: string,
  progress: { answer: string; tokenCount: number; toolSteps?: readonly ToolStep[] | undefined },
): Promise<boolean> {
  const { answer, tokenCount, toolSteps } = progress;
  const { rowCount } =
    toolSteps && toolSteps.length > 0
      ? await db.query(
          "UPDATE turns SET answer = $1, token_count = $2, tool_steps = $3 WHERE turn_id = $4 AND status = 'streaming' AND instance_id = $5",
          [toStoredText(answer), tokenCount, JSON.stringify(toolSteps), turnId, instanceId],
        )
      : await db.query("UPDATE turns SET answer = $1, token_count = $2 WHERE turn_id = $3 AND status = 'streaming' AND instance_id = $4", [
          toStoredText(answer),
          tokenCount,
          turnId,
          instanceId,
        ]);
  return rowCount !== 0;
}

/** Writes a turn's outcome and touches its conversation; false when the turn is no longer `instanceId`'s to write (fenced). */
export async function writeOutcome(
  db: BoundedPool,
  instanceId: string,
  turnId: string,
  outcome: TurnOutcome,
  now: number,
): Promise<boolean> {
  const steps = outcome.toolSteps && outcome.toolSteps.length > 0 ? JSON.stringify(outcome.toolSteps) : null;
  let written = false;
  await db.transaction(async (client) => {
    // The conversation's row first, as startTurn and a delete lock it: the same order everywhere, so no deadlock.
    await client.query('SELECT 1 FROM conversations WHERE context_id = (SELECT context_id FROM turns WHERE turn_id = $1) FOR UPDATE', [
      turnId,
    ]);
    // Fenced: only while the turn is still this instance's and still generating. A producer that was
    // reaped (paused, or cut off from the database, past the instance timeout) cannot overwrite the verdict.
    const updated = await client.query(
      `UPDATE turns SET status = $1, answer = $2, usage = $3, timings = $4, error_code = $5, token_count = $6, finished_at = $7,
         tool_steps = COALESCE($8, tool_steps) WHERE turn_id = $9 AND status = 'streaming' AND instance_id = $10`,
      [
        outcome.status,
        toStoredText(outcome.answer),
        outcome.usage ? JSON.stringify(outcome.usage) : null,
        outcome.timings ? JSON.stringify(outcome.timings) : null,
        outcome.errorCode ?? null,
        outcome.tokenCount,
        now,
        steps,
        turnId,
        instanceId,
      ],
    );
    // Not thrown here: the (empty) transaction commits, and the refusal is told once it has.
    written = updated.rowCount !== 0;
    if (!written) return;
    await client.query('UPDATE conversations SET updated_at = $1 WHERE context_id = (SELECT context_id FROM turns WHERE turn_id = $2)', [
      now,
      turnId,
    ]);
  });
  return written;
}
