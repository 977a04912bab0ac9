// The SSE event id, `<turn_id>/<position>`: formatted and parsed here only.
// `position` is the event's place in the turn's replay log, `start` for a connection's start event
// (resuming from it replays the whole turn) and `resync` for the event that replaces a turn that has
// left the log.

import { ID_PATTERN } from './ids.js';

/** Where in a turn an event id points. */
export type EventPosition = number | 'start' | 'resync';

/** A parsed event id. */
export interface EventId {
  turnId: string;
  position: EventPosition;
}

// A turn id (the id pattern without its anchors), a slash, then a position.
const EVENT_ID = new RegExp(`^(${ID_PATTERN.source.slice(1, -1)})/(start|resync|\\d{1,9})$`);

/** The id of the event at `position` of a turn. */
export function formatEventId(turnId: string, position: EventPosition): string {
  return `${turnId}/${position}`;
}

/** Parses an event id as the server sends it (surrounding whitespace ignored); undefined when it is not one. */
export function parseEventId(text: string): EventId | undefined {
  const match = EVENT_ID.exec(text.trim());
  if (!match) return undefined;
  const [, turnId, position] = match as unknown as [string, string, string];
  return { turnId, position: position === 'start' || position === 'resync' ? position : Number(position) };
}
