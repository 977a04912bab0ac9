import { describe, expect, it } from 'vitest';
import { asksForTime, findConversion, findExpression, findTimePlace } from './demo-tool-patterns.js';

const N = 10_000;

/** Messages built to make a backtracking regex take quadratic, cubic or exponential time, each about N characters. */
const ADVERSARIAL: [string, string][] = [
  ['a time question with a long run of spaces before a stray character', `what time is it in x${' '.repeat(N)}#`],
  ['many "in" markers', `what time is it ${'in '.repeat(N / 3)}#`],
  ['place characters that never reach the end', `what time is it in ${"a'-/ ".repeat(N / 5)}?#`],
  ['a conversion with spaces and a line break at the end', `convert 1 x to y${' '.repeat(N)}\n#`],
  ['a conversion with nothing but separators', `convert 1 ${' to'.repeat(N / 3)}\n`],
  ['a conversion number followed by spaces', `convert 1${' '.repeat(N)}\n`],
  ['an operator between two long runs of spaces', `what is 1${' '.repeat(N / 2)}+${' '.repeat(N / 2)}#`],
  ['a long run of commas inside an expression', `what is 1+1${','.repeat(N)}1`],
  ['signs and parentheses without an operand', `what is 1+${'-( '.repeat(N / 3)}#`],
  ['trailing punctuation and spaces', `what time is it in Tokyo${' ?. !'.repeat(N / 4)}#`],
];

describe('the demo model reading a message for a tool call', () => {
  it.each([
    ['what time is it in Tokyo', 'Tokyo'],
    ["What's the time in New York right now?", 'New York'],
    ['current time in Europe/Paris today!', 'Europe/Paris'],
    ['what time is it in Lucknow', 'Lucknow'],
    ['what time is it in new york in winter', 'new york in winter'],
    ['what time is it?', undefined],
    ['what time is it in ?', undefined],
    ['what time is it in Tokyo, Japan', undefined],
  ])('finds the place of %j', (message, place) => {
    expect(findTimePlace(message)).toBe(place);
  });

  it.each([
    ['convert 5 km to miles', { value: 5, fromUnit: 'km', toUnit: 'miles' }],
    ['Please convert 100 °F into C.', { value: 100, fromUnit: '°F', toUnit: 'C' }],
    ['convert -3.5 kg in pounds?!', { value: -3.5, fromUnit: 'kg', toUnit: 'pounds' }],
    ['convert 12 to 3', undefined],
    ['convert 5 k\nm to miles', undefined],
    ['convert the file to PDF', undefined],
  ])('reads the conversion in %j', (message, conversion) => {
    expect(findConversion(message)).toEqual(conversion);
  });

  it.each([
    ['what is 12*(3+4)?', '12*(3+4)'],
    ['Calculate 2^10 - sqrt(16), please.', '2^10 - sqrt(16)'],
    ['what is 2 * -(3)?', '2 * -(3)'],
    ['What is streaming?', undefined],
    ['12*(3+4)', undefined],
  ])('finds the expression in %j', (message, expression) => {
    expect(findExpression(message)).toBe(expression);
  });

  it.each(ADVERSARIAL)('reads %s in linear time', (_case, message) => {
    expect(message.length).toBeGreaterThan(N - 10);
    const started = performance.now();
    asksForTime(message);
    findTimePlace(message);
    findConversion(message);
    findExpression(message);
    // Linear work on 10,000 characters takes well under a millisecond; a backtracking pattern takes seconds to hours.
    expect(performance.now() - started).toBeLessThan(250);
  });

  it('still finds what an adversarial message asks for when there is an answer', () => {
    expect(findTimePlace(`what time is it in ${'x '.repeat(N / 2)}`)).toBe(`${'x '.repeat(N / 2)}`.trim());
    expect(findConversion(`convert 2 ${'m'.repeat(N)} to  ft${' '.repeat(N)}?`)).toEqual({
      value: 2,
      fromUnit: 'm'.repeat(N),
      toUnit: 'ft',
    });
    expect(findExpression(`what is 1${' '.repeat(N)}+ 2`)).toBe(`1${' '.repeat(N)}+ 2`);
  });
});
