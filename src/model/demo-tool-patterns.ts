// How the demo model reads a message for a tool call. Every pattern here runs on user text, so each
// is written to take time linear in the message: trailing punctuation and filler words are cut with
// plain string work, and no pattern has two adjacent quantifiers that can match the same characters.

/** Longer messages get an ordinary demo answer without looking for a tool call at all. */
export const MAX_PLANNED_MESSAGE_CHARS = 300;

const TIME_QUESTION = /\b(what time is it|what(?:'s| is) the (?:current |local )?time|current (?:local )?time|time is it)\b/i;
/** "in", then whitespace, then a letter: where a place name may start. */
const PLACE_MARKER = /\bin\s+(?=[A-Za-z])/gi;
const PLACE_CHARACTER = /[A-Za-z _/'-]/;
const TIME_FILLERS = ['right now', 'now', 'today'];
const CONVERT_NUMBER = /\bconvert\s+(-?\d+(?:\.\d+)?)/i;
/** "to", "into" or "in" as a word between whitespace (lookarounds, so no quantifier at all). */
const CONVERSION_SEPARATOR = /(?<=\s)(?:to|into|in)(?=\s)/gi;
const LINE_BREAK = /[\n\r\u2028\u2029]/;
const CALCULATION = /\b(what(?:'s| is)|calculate|compute|evaluate|how much is)\b/i;
const EXPRESSION_RUN = /(?:sqrt|abs|round|floor|ceil|min|max|pi|[\d.+\-*/%^()×÷,\s])+/gi;
const HAS_OPERATION = /(?:\d|\))\s*(?:\*\*|[-+*/%^×÷])\s*(?:[-+(]+\s*)?(?:\.?\d|sqrt|abs|pi)|(?:sqrt|abs)\s*\(\s*\d/i;

/** Whether a message asks what time it is (somewhere or in general). */
export function asksForTime(message: string): boolean {
  return TIME_QUESTION.test(message);
}

/**
 * The place named after the first "in" whose rest of the message is a place name ("what time is it
 * in New York right now?" → "New York"), or undefined.
 */
export function findTimePlace(message: string): string | undefined {
  const text = withoutTimeFiller(withoutTrailingPunctuation(message));
  // The place must reach the end: it starts at or after the last character that cannot be in one.
  let placeStart = text.length;
  while (placeStart > 0 && PLACE_CHARACTER.test(text[placeStart - 1]!)) placeStart--;
  PLACE_MARKER.lastIndex = 0;
  for (let marker = PLACE_MARKER.exec(text); marker; marker = PLACE_MARKER.exec(text)) {
    const start = marker.index + marker[0].length;
    if (start >= placeStart) return text.slice(start).trim();
  }
  return undefined;
}

/** What "convert 5 km to miles" asks for, or undefined. */
export function findConversion(message: string): { value: number; fromUnit: string; toUnit: string } | undefined {
  const text = withoutTrailingPunctuation(message);
  const number = CONVERT_NUMBER.exec(text);
  if (!number) return undefined;
  const rest = text.slice(number.index + number[0].length);
  CONVERSION_SEPARATOR.lastIndex = 0;
  for (let separator = CONVERSION_SEPARATOR.exec(rest); separator; separator = CONVERSION_SEPARATOR.exec(rest)) {
    const fromUnit = rest.slice(0, separator.index).trim();
    const toUnit = rest.slice(separator.index + separator[0].length).trim();
    if (fromUnit === '' || toUnit === '') continue;
    if (LINE_BREAK.test(fromUnit) || LINE_BREAK.test(toUnit)) return undefined;
    return { value: Number(number[1]), fromUnit, toUnit };
  }
  return undefined;
}

/** The longest arithmetic expression in a message that asks for a calculation ("what is 12*(3+4)?" → "12*(3+4)"), or undefined. */
export function findExpression(message: string): string | undefined {
  if (!CALCULATION.test(message)) return undefined;
  let longest: string | undefined;
  for (const run of message.match(EXPRESSION_RUN) ?? []) {
    const candidate = withoutTrailing(run.trim(), (character) => character === ',' || character === '.');
    if ((longest === undefined || candidate.length > longest.length) && HAS_OPERATION.test(candidate)) longest = candidate;
  }
  return longest;
}

function withoutTrailingPunctuation(text: string): string {
  return withoutTrailing(text, (character) => character === '?' || character === '.' || character === '!' || isSpace(character));
}

/** Drops one trailing "right now", "now" or "today" that is a word of its own. */
function withoutTimeFiller(text: string): string {
  const lower = text.toLowerCase();
  for (const filler of TIME_FILLERS) {
    const start = text.length - filler.length;
    if (start > 0 && lower.endsWith(filler) && isSpace(text[start - 1]!)) return withoutTrailing(text.slice(0, start), isSpace);
  }
  return text;
}

function withoutTrailing(text: string, drop: (character: string) => boolean): string {
  let end = text.length;
  while (end > 0 && drop(text[end - 1]!)) end--;
  return text.slice(0, end);
}

function isSpace(character: string): boolean {
  return character.trim() === '';
}
