/**
 * Terminal safety for text that came from the server (answers, tool steps, titles, error messages).
 * A prompt-injected answer could otherwise send escape sequences to the user's terminal: OSC 52
 * clipboard writes, a new window title, cursor moves or a cleared screen that hide or fake text.
 */

type State = 'text' | 'escape' | 'csi' | 'string' | 'string-escape';

/** Introducers of the ECMA-48 control strings (OSC, DCS, SOS, PM, APC), after ESC and as C1 characters. */
const STRING_AFTER_ESC = new Set([0x5d, 0x50, 0x58, 0x5e, 0x5f]);
const STRING_C1 = new Set([0x9d, 0x90, 0x98, 0x9e, 0x9f]);

/**
 * A filter for text arriving in pieces (the tokens of an answer): removes every escape sequence
 * (ESC and C1 CSI sequences, OSC/DCS/SOS/PM/APC strings, two-character escapes) and every other
 * C0 and C1 control character and DEL, keeping `\n` and `\t`. It keeps its state between pieces,
 * so a sequence split over several tokens is removed whole. Whatever the input, the output holds
 * no control character but `\n` and `\t`. A control string left unterminated ends at the next
 * newline, so it cannot hide the rest of the answer.
 */
export function createControlFilter(): (text: string) => string {
  let state: State = 'text';

  const step = (code: number, character: string): string => {
    switch (state) {
      case 'escape':
        if (code === 0x5b) state = 'csi';
        else if (STRING_AFTER_ESC.has(code)) state = 'string';
        else if (code >= 0x20 && code <= 0x2f)
          return ''; // intermediate bytes, as in ESC ( B
        else {
          state = 'text';
          // A final byte ends the sequence; anything else is not part of it.
          if (code < 0x30 || code > 0x7e) return step(code, character);
        }
        return '';
      case 'csi':
        if (code >= 0x20 && code <= 0x3f) return ''; // parameter and intermediate bytes
        state = 'text';
        return code >= 0x40 && code <= 0x7e ? '' : step(code, character);
      case 'string':
        if (code === 0x07 || code === 0x9c) state = 'text';
        else if (code === 0x1b) state = 'string-escape';
        else if (code === 0x0a) {
          state = 'text';
          return '\n';
        }
        return '';
      case 'string-escape':
        // ESC \ is the string terminator; any other ESC ends the string and starts a new sequence.
        state = code === 0x5c ? 'text' : 'escape';
        return code === 0x5c ? '' : step(code, character);
      case 'text':
        if (code === 0x1b) state = 'escape';
        else if (code === 0x9b) state = 'csi';
        else if (STRING_C1.has(code)) state = 'string';
        else if (code === 0x0a || code === 0x09 || (code >= 0x20 && code < 0x7f) || code > 0x9f) return character;
        return '';
    }
  };

  return (text) => {
    let clean = '';
    for (const character of text) clean += step(character.codePointAt(0)!, character);
    return clean;
  };
}

/** Text with every escape sequence and control character removed, but `\n` and `\t`. */
export function stripControls(text: string): string {
  return createControlFilter()(text);
}

/**
 * Valid JSON text made safe on a terminal, meaning exactly the same (JSON.parse gives the same
 * value): a JSON string may hold C1 control characters and DEL as they are (only U+0000 to U+001F
 * must be escaped), so these become `\u00XX` escapes; a CR (or another C0 character) can only be
 * whitespace between tokens, and becomes a space.
 */
export function escapeJsonControls(json: string): string {
  return json
    .replace(/[\u0000-\u0008\u000b-\u001f]/g, ' ') // eslint-disable-line no-control-regex
    .replace(/[\u007f-\u009f]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
