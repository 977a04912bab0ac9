import { describe, expect, it } from 'vitest';
import { entryBlock, framedLog, sseBlock } from './sse-framing.js';
import type { TurnEntry } from '../turns/turn-types.js';

// Text of 1 to 4 bytes a character, so positions and offsets differ.
const entries: TurnEntry[] = Array.from({ length: 50 }, (_, position) => ({
  position,
  data: JSON.stringify({ token: `t${position}${[...'é€😀'].slice(0, position % 4).join('')}`, token_index: position }),
  tokenIndex: position,
}));

describe('SSE framing', () => {
  it('frames an event as its data line, then its id line, then a blank line', () => {
    expect(sseBlock('turn/3', '{"a":1}')).toBe('data: {"a":1}\nid: turn/3\n\n');
    expect(entryBlock('turn', { position: 'resync', data: '{}' })).toBe('data: {}\nid: turn/resync\n\n');
  });

  it('frames an ended log once: every offset starts the block of its position, and the same array gets the same text', () => {
    const framed = framedLog('turn', entries);
    for (let position = 0; position < entries.length; position++) {
      expect(framed.text.slice(framed.offsets[position])).toBe(
        entries
          .slice(position)
          .map((entry) => entryBlock('turn', entry))
          .join(''),
      );
    }
    expect(framedLog('turn', entries)).toBe(framed);
    expect(framedLog('turn', [...entries])).not.toBe(framed);
  });
});
