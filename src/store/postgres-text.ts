// PostgreSQL's TEXT cannot hold the NUL character, and a message or an answer may contain one (ChatWait
// keeps text exactly). Such a text is stored as a marker (U+0001) followed by its JSON form, where NUL is
// the six characters `\u0000`; so is a text that itself begins with the marker, so decoding is never
// ambiguous. Every other text, nearly all of them, is stored as is and reads normally in psql.

const MARKER = '\u0001';

/** A text as the PostgreSQL store keeps it. */
export function toStoredText(text: string): string {
  return text.includes('\u0000') || text.startsWith(MARKER) ? MARKER + JSON.stringify(text) : text;
}

/** The text a stored value holds. */
export function fromStoredText(stored: string): string {
  return stored.startsWith(MARKER) ? (JSON.parse(stored.slice(1)) as string) : stored;
}
