import type { ConversationStore } from '../store/conversation-store.js';

/**
 * Conversation ids are scoped per API key. A client names its conversations with any context_id;
 * the store keeps each under a key made of its owner (the API key's digest) and that id, so two keys
 * may use the same id without either learning that the other does: a send to an id another key
 * uses starts a conversation of one's own, exactly as an unused id would. Without API keys the key
 * is the id itself. The separator `~` is not allowed in a context_id, so a key never equals an id.
 */
const SEPARATOR = '~';

/** The store key of a client's conversation id. */
export function conversationKey(owner: string | null | undefined, contextId: string): string {
  return owner ? `${owner}${SEPARATOR}${contextId}` : contextId;
}

/** The context_id a client knows a stored conversation by. */
export function publicContextId(key: string): string {
  const separator = key.indexOf(SEPARATOR);
  return separator < 0 ? key : key.slice(separator + 1);
}

/**
 * The store key of a client's conversation: the scoped key, or the bare id of a conversation this
 * owner created before ids were scoped (so upgrading loses nobody's conversations).
 */
export async function findConversationKey(
  store: Pick<ConversationStore, 'conversationOwner'>,
  owner: string | null | undefined,
  contextId: string,
): Promise<string> {
  const key = conversationKey(owner, contextId);
  if (key === contextId || (await store.conversationOwner(key)) !== undefined) return key;
  return (await store.conversationOwner(contextId)) === owner ? contextId : key;
}
