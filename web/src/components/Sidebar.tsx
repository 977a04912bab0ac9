import { useState } from 'react';
import type { ConversationSummary } from '../api';
import { PencilIcon, TrashIcon } from './icons';

/** Options of the conversation list. */
interface SidebarProps {
  conversations: ConversationSummary[];
  currentId: string | undefined;
  open: boolean;
  hasMore: boolean;
  onLoadMore(): void;
  onNew(): void;
  onSelect(contextId: string): void;
  onRename(contextId: string, title: string): void;
  onDelete(contextId: string): void;
}

/** The stored conversations: new, switch, rename, delete. */
export function Sidebar(props: SidebarProps) {
  const [editing, setEditing] = useState<string>();
  const [title, setTitle] = useState('');
  const saveTitle = (contextId: string) => {
    if (title.trim() !== '') props.onRename(contextId, title.trim());
    setEditing(undefined);
  };
  return (
    <nav className={`sidebar${props.open ? ' open' : ''}`} aria-label="Conversations">
      <button type="button" className="new-chat" onClick={props.onNew}>
        + New chat
      </button>
      <ul>
        {props.conversations.map((conversation) => (
          <li key={conversation.context_id} className={conversation.context_id === props.currentId ? 'current' : undefined}>
            {editing === conversation.context_id ? (
              <form
                onSubmit={(event) => {
                  event.preventDefault();
                  saveTitle(conversation.context_id);
                }}
              >
                <input
                  aria-label="Conversation title"
                  value={title}
                  autoFocus
                  maxLength={200}
                  onChange={(event) => setTitle(event.target.value)}
                  onBlur={() => saveTitle(conversation.context_id)}
                  onKeyDown={(event) => event.key === 'Escape' && setEditing(undefined)}
                />
              </form>
            ) : (
              <>
                <a
                  href={`/c/${encodeURIComponent(conversation.context_id)}`}
                  aria-current={conversation.context_id === props.currentId ? 'page' : undefined}
                  onClick={(event) => {
                    event.preventDefault();
                    props.onSelect(conversation.context_id);
                  }}
                >
                  {conversation.title}
                </a>
                <button
                  type="button"
                  className="icon"
                  aria-label={`Rename ${conversation.title}`}
                  onClick={() => {
                    setTitle(conversation.title);
                    setEditing(conversation.context_id);
                  }}
                >
                  <PencilIcon />
                </button>
                <button
                  type="button"
                  className="icon"
                  aria-label={`Delete ${conversation.title}`}
                  onClick={() => {
                    if (window.confirm(`Delete "${conversation.title}"?`)) props.onDelete(conversation.context_id);
                  }}
                >
                  <TrashIcon />
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
      {props.hasMore && (
        <button type="button" className="load-more" onClick={props.onLoadMore}>
          More conversations
        </button>
      )}
    </nav>
  );
}
