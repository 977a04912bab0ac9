import type { TurnStatus } from '../../protocol/turn.js';
import { UsageError, type ApiClient } from '../api-client.js';

/** What a first Ctrl+C says when the answer has not stopped within STOP_NOTE_DELAY_MS. */
export const STOP_NOTE = 'stopping the answer… (Ctrl+C again to quit)';
/** How long a stop may take before the note appears (a quick stop needs none, and a note would break the answer's line). */
export const STOP_NOTE_DELAY_MS = 1000;

const CONTEXT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Checks a --context value against the API's rule (1 to 128 of A-Z a-z 0-9 . _ : -). */
export function validateContextId(value: string | undefined): string | undefined {
  if (value !== undefined && !CONTEXT_ID.test(value)) {
    throw new UsageError(`--context must be 1 to 128 characters from A-Z a-z 0-9 . _ : - (got ${JSON.stringify(value)}).`);
  }
  return value;
}

/** Cancels whatever the conversation is generating (for a wait request, whose turn id is not known until it ends). */
export async function cancelRunningTurn(client: ApiClient, contextId: string): Promise<void> {
  // Only the newest turn can be generating: one turn is all to read, however long the conversation.
  const { body } = await client.json<{ turns?: { turn_id: string; status: TurnStatus }[] }>(
    `/api/v1/conversations/${encodeURIComponent(contextId)}?limit=1`,
    {
      allowErrors: true,
      signal: AbortSignal.timeout(5000),
    },
  );
  const running = body?.turns?.findLast((turn) => turn.status === 'streaming');
  if (running) await client.cancelTurn(running.turn_id);
}
