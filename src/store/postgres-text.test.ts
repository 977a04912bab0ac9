import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromStoredText, toStoredText } from './postgres-text.js';

describe('text kept in PostgreSQL', () => {
  it('round-trips any text, and never stores a NUL', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => {
        const stored = toStoredText(text);
        expect(stored.includes('\u0000')).toBe(false);
        expect(fromStoredText(stored)).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });

  it('stores ordinary text as is, and texts beginning with the marker or holding a NUL encoded', () => {
    expect(toStoredText('Hello, 世界 👋\n')).toBe('Hello, 世界 👋\n');
    expect(fromStoredText(toStoredText('a\u0000b'))).toBe('a\u0000b');
    expect(fromStoredText(toStoredText('\u0001{"x"}'))).toBe('\u0001{"x"}');
    expect(toStoredText('')).toBe('');
  });
});
