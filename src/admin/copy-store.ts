import type { ConversationStore } from '../store/conversation-store.js';

/** What a copy did. */
export interface CopySummary {
  conversations: number;
  newConversations: number;
  turnsAdded: number;
  turnsAlreadyThere: number;
  /** Turns not copied: the target's conversation already has their client_message_id, under another turn_id. */
  turnsSkipped: number;
}

/**
 * Copies every conversation of one store into another, a page at a time, each conversation in one
 * write of the target. Idempotent: what the target already has (by context_id and turn_id) is left as
 * it is, so a second run adds nothing, and a run stopped halfway finishes when started again. A turn
 * whose client_message_id the target's conversation already gave another turn is skipped and counted:
 * one send stays one turn, and the rest of its conversation is still copied.
 */
export async function copyConversations(
  from: ConversationStore,
  to: ConversationStore,
  onProgress: (summary: CopySummary) => void = () => {},
  pageSize = 100,
): Promise<CopySummary> {
  const summary: CopySummary = {
    conversations: 0,
    newConversations: 0,
    turnsAdded: 0,
    turnsAlreadyThere: 0,
    turnsSkipped: 0,
  };
  let after: string | undefined;
  for (;;) {
    const page = await from.exportConversations({ after, limit: pageSize });
    if (page.length === 0) return summary;
    for (const conversation of page) {
      const result = await to.importConversation(conversation);
      summary.conversations++;
      if (result.created) summary.newConversations++;
      summary.turnsAdded += result.turnsAdded;
      summary.turnsSkipped += result.turnsSkipped;
      summary.turnsAlreadyThere += conversation.turns.length - result.turnsAdded - result.turnsSkipped;
    }
    after = page.at(-1)!.contextId;
    onProgress({ ...summary });
  }
}
