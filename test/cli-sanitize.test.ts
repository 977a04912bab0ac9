import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createControlFilter, escapeJsonControls, stripControls } from '../src/cli/sanitize.js';
import { oneLine } from '../src/cli/terminal.js';

// The filter that keeps server text from driving the user's terminal (see cli-safety.test.ts for the client run for real).

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('stripControls', () => {
  it('removes escape sequences whole and control characters, keeping text, newlines and tabs', () => {
    expect(stripControls('a\u001b]52;c;SGk=\u0007b')).toBe('ab'); // OSC 52 ended by BEL
    expect(stripControls('a\u001b]0;title\u001b\\b')).toBe('ab'); // OSC ended by ESC \
    expect(stripControls('a\u009d0;title\u009cb')).toBe('ab'); // C1 OSC ended by C1 ST
    expect(stripControls('a\u001b[2Jb\u001b[1;31mc\u009b3Ad')).toBe('abcd'); // CSI, with ESC and as C1
    expect(stripControls('a\u001bPq#0;2;0;0;0\u001b\\b\u001b(Bc\u001b7d')).toBe('abcd'); // DCS, charset, save cursor
    expect(stripControls('line one\r\nline\ttwo\rhidden\u0008\u0007\u007f\u0085\n')).toBe('line one\nline\ttwohidden\n');
    expect(stripControls('héllo ✓ 日本 🙂')).toBe('héllo ✓ 日本 🙂');
  });

  it('ends a control string left open at the next newline, so it cannot hide the rest', () => {
    expect(stripControls('before\u001b]52;c;never ended\nafter')).toBe('before\nafter');
  });

  it('removes a sequence split over several pieces, as tokens split it', () => {
    const filter = createControlFilter();
    const pieces = ['Hi ', '\u001b', ']52;c;', 'SGk=', '\u0007there', '\u001b[', '2', 'J!', '\u009b', '31m.'];
    expect(pieces.map(filter).join('')).toBe('Hi there!.');
  });

  it('never lets a control character through, whatever the input and however it is cut', () => {
    const character = fc.constantFrom(
      '\u001b',
      '\u009b',
      '\u009d',
      '\u0090',
      '\u009c',
      '\u0007',
      '\r',
      '\n',
      '\t',
      '[',
      ']',
      '\\',
      ';',
      'P',
      '2',
      'J',
      'm',
      'a',
      ' ',
      'é',
      '\u0000',
      '\u007f',
    );
    fc.assert(
      fc.property(fc.array(fc.array(character, { maxLength: 8 }), { maxLength: 10 }), (pieces) => {
        const filter = createControlFilter();
        const output = pieces.map((piece) => filter(piece.join(''))).join('');
        expect(output).not.toMatch(CONTROL);
        // Newlines always survive.
        expect(output.split('\n').length).toBe(pieces.flat().filter((c) => c === '\n').length + 1);
      }),
    );
  });
});

describe('oneLine and escapeJsonControls', () => {
  it('oneLine cleans, collapses whitespace and cuts', () => {
    expect(oneLine(' a\u001b[2J\n b\r\u009b1m ')).toBe('a b');
    expect(oneLine('abcdef', 4)).toBe('abc…');
  });

  it('escapeJsonControls keeps the JSON the same while escaping C1 characters and DEL', () => {
    const value = { text: 'a\u009b31mb\u007fc\u0085', nested: ['\u001b]0;x\u0007'] };
    const json = JSON.stringify(value);
    const escaped = escapeJsonControls(`${json.slice(0, 1)}\r\n${json.slice(1)}`);
    expect(escaped).not.toMatch(CONTROL);
    expect(JSON.parse(escaped)).toEqual(value);
    expect(escaped).toContain('a\\u009b31mb\\u007fc\\u0085');
  });
});
