import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { api, ApiError, storeApiKey, storedApiKey, type ConversationSummary, type ServerConfig } from './api';
import { Composer } from './components/Composer';
import { MessageView } from './components/MessageView';
import { MenuIcon } from './components/icons';
import { Sidebar } from './components/Sidebar';
import { useChat } from './use-chat';

const STARTERS = [
  'Explain Server-Sent Events in three sentences',
  'Write a haiku about streaming data',
  'What is 17 × 23? Show your steps',
  'Give me a TypeScript function that debounces another one',
];

/** The conversation the URL names: /c/<context_id>, or none for a new chat. */
function contextIdFromLocation(): string | undefined {
  const match = /^\/c\/([^/]+)$/.exec(window.location.pathname);
  return match ? decodeURIComponent(match[1]!) : undefined;
}

/** The chat page. */
export function App() {
  const [config, setConfig] = useState<ServerConfig>();
  const [configError, setConfigError] = useState<string>();
  const [needsKey, setNeedsKey] = useState(false);
  const [contextId, setContextId] = useState(contextIdFromLocation);
  const [mode, setMode] = useState<'wait' | 'streaming'>('streaming');
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [keyVersion, setKeyVersion] = useState(0);
  const askForKey = useCallback(() => setNeedsKey(true), []);

  useEffect(() => {
    api
      .config()
      .then((loaded) => {
        setConfig(loaded);
        setMode(loaded.default_chat_mode);
        if (loaded.auth_required && !storedApiKey()) setNeedsKey(true);
      })
      .catch(() => setConfigError('The ChatWait server cannot be reached. Is it running?'));
    const onPopState = () => setContextId(contextIdFromLocation());
    window.addEventListener('popstate', onPopState);
    return () => window.removeEventListener('popstate', onPopState);
  }, []);

  const refreshConversations = useCallback(() => {
    api
      .listConversations()
      .then((page) => {
        setConversations(page.conversations);
        setNextCursor(page.next_cursor);
      })
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 401) setNeedsKey(true);
      });
  }, []);
  useEffect(() => {
    if (config && !needsKey) refreshConversations();
  }, [config, needsKey, refreshConversations]);

  const navigate = useCallback((next: string | undefined) => {
    const path = next ? `/c/${encodeURIComponent(next)}` : '/';
    if (window.location.pathname !== path) window.history.pushState(null, '', path);
    setContextId(next);
    setSidebarOpen(false);
  }, []);

  const chat = useChat({
    contextId,
    mode,
    onConversationCreated: navigate,
    onActivity: refreshConversations,
    onUnauthorized: askForKey,
    keyVersion,
  });

  if (configError) return <main className="fatal">{configError}</main>;
  if (!config) return <main className="fatal" aria-busy="true" />;
  if (needsKey)
    return (
      <ApiKeyDialog
        onSaved={() => {
          setNeedsKey(false);
          setKeyVersion((version) => version + 1);
        }}
      />
    );

  const title = conversations.find((conversation) => conversation.context_id === contextId)?.title ?? 'New chat';
  return (
    <div className="app">
      <Sidebar
        conversations={conversations}
        currentId={contextId}
        open={sidebarOpen}
        hasMore={nextCursor !== null}
        onLoadMore={() =>
          nextCursor &&
          void api.listConversations(nextCursor).then((page) => {
            setConversations((current) => [...current, ...page.conversations]);
            setNextCursor(page.next_cursor);
          })
        }
        onNew={() => navigate(undefined)}
        onSelect={navigate}
        onRename={(id, newTitle) => void api.rename(id, newTitle).then(refreshConversations)}
        onDelete={(id) =>
          void api.remove(id).then(() => {
            if (id === contextId) navigate(undefined);
            refreshConversations();
          })
        }
      />
      {sidebarOpen && <div className="backdrop" aria-hidden="true" onClick={() => setSidebarOpen(false)} />}
      <main className="chat" onKeyDown={(event) => event.key === 'Escape' && setSidebarOpen(false)}>
        <header className="topbar">
          <button
            type="button"
            className="icon menu"
            aria-label="Show conversations"
            aria-expanded={sidebarOpen}
            onClick={() => setSidebarOpen((open) => !open)}
          >
            <MenuIcon />
          </button>
          <h1>{title}</h1>
          {config.show_mode_selector && (
            <label className="mode">
              <span className="visually-hidden">Answer mode</span>
              <select
                value={mode}
                onChange={(event) => setMode(event.target.value as 'wait' | 'streaming')}
                disabled={chat.busy}
                aria-label="Answer mode"
              >
                <option value="streaming">Streaming</option>
                <option value="wait">Wait</option>
              </select>
            </label>
          )}
        </header>
        {config.model.demo && (
          <div className="banner" role="note">
            Demo model: answers are canned, not AI. Set <code>GEMINI_API_KEY</code> or <code>OPENAI_BASE_URL</code> on the server for a real
            one.
          </div>
        )}
        <MessageList chat={chat} onStarter={chat.send} />
        <Composer busy={chat.busy} disabled={chat.loading} onSend={chat.send} onStop={chat.stop} />
      </main>
    </div>
  );
}

/** The conversation, following new text unless the reader has scrolled up. */
function MessageList({ chat, onStarter }: { chat: ReturnType<typeof useChat>; onStarter(text: string): void }) {
  const container = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  /** Where auto-scroll last put the view: anything above it is the reader's doing. */
  const autoTop = useRef(0);
  const [showJump, setShowJump] = useState(false);
  /** Set while earlier messages are being put above the view: their distance from the bottom is kept, so nothing jumps. */
  const keepFromBottom = useRef<number | undefined>(undefined);
  const unpin = () => {
    pinned.current = false;
    setShowJump(true);
  };
  const onScroll = () => {
    const element = container.current!;
    const atBottom = element.scrollHeight - element.scrollTop - element.clientHeight < 48;
    if (element.scrollTop < autoTop.current - 4 && !atBottom) unpin();
    else if (atBottom) {
      pinned.current = true;
      setShowJump(false);
    }
  };
  useLayoutEffect(() => {
    const element = container.current;
    if (element && keepFromBottom.current !== undefined) {
      element.scrollTop = element.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = undefined;
      return;
    }
    if (!element || !pinned.current) return;
    // The reader may have scrolled up since the last frame, before its scroll event ran: respect that.
    if (element.scrollTop < autoTop.current - 4) return unpin();
    element.scrollTop = element.scrollHeight;
    autoTop.current = element.scrollTop;
  }, [chat.messages]);
  const jump = () => {
    pinned.current = true;
    setShowJump(false);
    const element = container.current;
    if (!element) return;
    element.scrollTop = element.scrollHeight;
    autoTop.current = element.scrollTop;
  };
  const loadOlder = () => {
    const element = container.current;
    if (element) keepFromBottom.current = element.scrollHeight - element.scrollTop;
    chat.loadOlder();
  };
  const lastAssistant = chat.messages.findLastIndex((message) => message.role === 'assistant');
  return (
    <div className="messages-wrapper">
      <div
        className="messages"
        ref={container}
        onScroll={onScroll}
        role="log"
        aria-live="polite"
        aria-relevant="additions text"
        aria-label="Conversation"
      >
        {chat.loading && <p className="muted">Loading…</p>}
        {chat.hasOlder && (
          <button type="button" className="older" onClick={loadOlder} disabled={chat.loadingOlder}>
            {chat.loadingOlder ? 'Loading earlier messages…' : '↑ Load earlier messages'}
          </button>
        )}
        {chat.loadError && (
          <div className="error" role="alert">
            {chat.loadError.message}
          </div>
        )}
        {!chat.loading && chat.messages.length === 0 && (
          <section className="welcome">
            <h2>Hello! What shall we talk about?</h2>
            <p>Answers stream in as they are written, and survive a dropped connection or a reload.</p>
            <div className="starters">
              {STARTERS.map((starter) => (
                <button type="button" key={starter} onClick={() => onStarter(starter)}>
                  {starter}
                </button>
              ))}
            </div>
          </section>
        )}
        {chat.messages.map((message, index) => (
          <MessageView
            key={message.id}
            message={message}
            isLast={index === lastAssistant}
            busy={chat.busy}
            onRetry={chat.retry}
            onRegenerate={chat.regenerate}
          />
        ))}
      </div>
      {showJump && (
        <button type="button" className="jump" onClick={jump}>
          ↓ Jump to latest
        </button>
      )}
    </div>
  );
}

/** Asks for the API key when the server needs one, and keeps it in this browser. */
function ApiKeyDialog({ onSaved }: { onSaved(): void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string>();
  const save = async () => {
    storeApiKey(key.trim());
    try {
      await api.listConversations();
      onSaved();
    } catch (caught) {
      storeApiKey(undefined);
      setError(caught instanceof ApiError && caught.status === 401 ? 'That key is not accepted.' : 'The server cannot be reached.');
    }
  };
  return (
    <main className="fatal">
      <form
        className="key-dialog"
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <h1>This server needs an API key</h1>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" type="password" value={key} onChange={(event) => setKey(event.target.value)} autoFocus autoComplete="off" />
        {error && <p role="alert">{error}</p>}
        <button type="submit" disabled={key.trim() === ''}>
          Continue
        </button>
      </form>
    </main>
  );
}
