import { useRef, useState, type KeyboardEvent } from 'react';

/** Options of the message box. */
interface ComposerProps {
  busy: boolean;
  /** True while the conversation loads: nothing can be sent yet. */
  disabled: boolean;
  onSend(text: string): void;
  onStop(): void;
}

/** The message box: Enter sends, Shift+Enter adds a line; Stop while an answer is running. */
export function Composer({ busy, disabled, onSend, onStop }: ComposerProps) {
  const [text, setText] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  const submit = () => {
    if (busy || disabled || text.trim() === '') return;
    onSend(text);
    setText('');
    input.current?.focus();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        submit();
      }}
    >
      <label htmlFor="message-input" className="visually-hidden">
        Message
      </label>
      <textarea
        id="message-input"
        ref={input}
        value={text}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={onKeyDown}
        placeholder="Send a message (Enter to send, Shift+Enter for a new line)"
        rows={1}
        maxLength={10000}
        autoFocus
      />
      {busy ? (
        <button type="button" className="stop" onClick={onStop} aria-label="Stop the answer">
          Stop
        </button>
      ) : (
        <button type="submit" className="send" disabled={disabled || text.trim() === ''} aria-label="Send message">
          Send
        </button>
      )}
    </form>
  );
}
