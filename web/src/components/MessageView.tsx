import { useState } from 'react';
import { tokensPerSecond, type ChatMessage } from '../chat-types';
import { Markdown } from './Markdown';
import { ToolSteps } from './ToolSteps';

/** Options of one message bubble. */
interface MessageViewProps {
  message: ChatMessage;
  isLast: boolean;
  onRetry(messageId: string): void;
  onRegenerate(): void;
  busy: boolean;
}

/** A user message, or an answer with its state, error, actions and details. */
export function MessageView({ message, isLast, onRetry, onRegenerate, busy }: MessageViewProps) {
  const [showDetails, setShowDetails] = useState(false);
  const [copied, setCopied] = useState(false);
  if (message.role === 'user') {
    return (
      <div className="message message-user" data-testid="user-message">
        <div className="bubble">{message.text}</div>
      </div>
    );
  }
  const streaming = message.status === 'waiting' || message.status === 'streaming';
  const copy = () =>
    void navigator.clipboard?.writeText(message.text).then(() => {
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    });
  const rate = message.details ? tokensPerSecond(message.details) : null;
  return (
    <div className="message message-assistant" data-testid="assistant-message" data-status={message.status} aria-busy={streaming}>
      <div className="bubble">
        {message.steps && message.steps.length > 0 && <ToolSteps steps={message.steps} />}
        {message.status === 'waiting' && message.text === '' ? (
          <span className="typing" role="status" aria-label="The assistant is typing">
            <span />
            <span />
            <span />
          </span>
        ) : (
          <Markdown text={message.text} streaming={streaming} />
        )}
        {message.reconnecting && (
          <div className="reconnecting" role="status">
            Connection lost, reconnecting…
          </div>
        )}
        {message.status === 'cancelled' && <div className="note">Stopped.</div>}
      </div>
      {message.error && !streaming && (
        <div className="error" role="alert">
          <span>{message.error.message}</span>
          <button type="button" onClick={() => onRetry(message.id)} disabled={busy}>
            Retry
          </button>
        </div>
      )}
      {!streaming && message.text !== '' && (
        <div className="actions">
          <button type="button" onClick={copy} aria-label="Copy answer">
            {copied ? 'Copied' : 'Copy'}
          </button>
          {isLast && (
            <button type="button" onClick={onRegenerate} disabled={busy} aria-label="Regenerate answer">
              Regenerate
            </button>
          )}
          {message.details && (
            <button type="button" onClick={() => setShowDetails((shown) => !shown)} aria-expanded={showDetails} aria-label="Answer details">
              Details
            </button>
          )}
        </div>
      )}
      {showDetails && message.details && (
        <dl className="details" data-testid="answer-details">
          <dt>Model</dt>
          <dd>{message.details.model}</dd>
          <dt>First token</dt>
          <dd>{message.details.ttftMs === null ? '–' : `${Math.round(message.details.ttftMs)} ms`}</dd>
          <dt>Speed</dt>
          <dd>{rate === null ? '–' : `${rate.toFixed(1)} tokens/s`}</dd>
          <dt>Tokens</dt>
          <dd>{message.details.tokenCount}</dd>
        </dl>
      )}
    </div>
  );
}
