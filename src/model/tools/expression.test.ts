import { describe, expect, it } from 'vitest';
import { evaluateExpression, ExpressionError, formatNumber, MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH } from './expression.js';

describe('the calculator expression parser', () => {
  it.each([
    ['2 + 3 * 4', 14],
    ['(2 + 3) * 4', 20],
    ['10 - 4 - 3', 3],
    ['100 / 10 / 5', 2],
    ['2 * 3 % 4', 2],
    ['7 % 3', 1],
    ['2 ^ 3 ^ 2', 512],
    ['2 ** 3 ** 2', 512],
    ['(2 ^ 3) ^ 2', 64],
    ['-2 ^ 2', -4],
    ['(-2) ^ 2', 4],
    ['2 ^ -1', 0.5],
    ['2 * -3', -6],
    ['--3', 3],
    ['-(-(3))', 3],
    ['+4', 4],
    ['.5 + 1.25', 1.75],
    ['1e3 * 2', 2000],
    ['2.5E-1', 0.25],
    ['12*(3+4)', 84],
    ['17 × 23', 391],
    ['10 ÷ 4', 2.5],
    ['sqrt(16) + abs(-3)', 7],
    ['max(1, 5, 3) - min(4, 2)', 3],
    ['round(3.14159, 2)', 3.14],
    ['round(2.5)', 3],
    ['floor(-1.5) + ceil(1.2)', 0],
    ['round(pi, 4)', 3.1416],
    ['ln(e)', 1],
    ['log(1000)', 3],
    ['SQRT(9)', 3],
  ])('evaluates %s as %d', (expression, expected) => {
    expect(evaluateExpression(expression)).toBeCloseTo(expected, 12);
  });

  it('formats results as people write them', () => {
    expect(formatNumber(evaluateExpression('0.1 + 0.2'))).toBe('0.3');
    expect(formatNumber(evaluateExpression('1 / 3'))).toBe('0.333333333333333');
    expect(formatNumber(evaluateExpression('-0 * 5'))).toBe('0');
    expect(formatNumber(evaluateExpression('2 ^ 40'))).toBe('1099511627776');
  });

  it.each([
    ['1 / 0', /^division by zero$/],
    ['5 % 0', /division by zero/],
    ['0 ^ -1', /division by zero/],
    ['2 +', /ends too early/],
    ['', /ends too early/],
    ['(1 + 2', /missing "\)" for the "\(" at position 1/],
    ['1 + 2)', /unmatched "\)" at position 6/],
    ['2 $ 3', /unexpected character "\$" at position 3/],
    ['2 3', /unexpected the number 3 at position 3/],
    ['2(3)', /unexpected "\(" at position 2/],
    ['* 2', /expected a number at position 1, found "\*"/],
    ['foo(1)', /unknown name "foo"/],
    ['process.exit()', /unexpected character "\." at position 8/],
    ['process', /unknown name "process"/],
    ['constructor', /unknown name "constructor"/],
    ['toString(1)', /unknown name "tostring"/],
    ['__proto__', /unknown name "__proto__"/],
    ['sqrt 4', /sqrt needs parentheses/],
    ['sqrt(-1)', /negative number/],
    ['(-8) ^ (1 / 3)', /fractional power/],
    ['max()', /max takes 1 to 100 arguments, not 0/],
    ['sqrt(1, 2)', /sqrt takes 1 argument, not 2/],
    ['max(1,)', /expected a number/],
    ['10 ^ 400', /^the result of 10 \^ 400 is too large to represent \(beyond ±1\.8e308\)$/],
    ['1e400', /^the number 1e400 at position 1 is too large to represent/],
    ['0 * 1e999', /the number 1e999 at position 5 is too large/],
    ['1 / 1e-400', /^the number 1e-400 at position 5 is too small to represent \(the smallest is about 5e-324\)$/],
    ['1e200 * 1e200 - 1e200 * 1e200', /^the result of 1e\+200 \* 1e\+200 is too large to represent/],
    ['0 * (1e308 * 10)', /^the result of 1e\+308 \* 10 is too large/],
    ['1 / (1e-200 * 1e-200)', /^the result of 1e-200 \* 1e-200 is too small to represent/],
    ['1e-300 / 1e300', /^the result of 1e-300 \/ 1e\+300 is too small/],
    ['0.5 ^ 2000', /^the result of 0\.5 \^ 2000 is too small/],
    ['exp(1000) - exp(1000)', /^the result of exp\(1000\) is too large/],
    ['1.7e308 + 1.7e308', /^the result of 1\.7e\+308 \+ 1\.7e\+308 is too large/],
    ['round(1.5, 0.5)', /whole number of digits/],
  ])('refuses %j with a clear message', (expression, message) => {
    expect(() => evaluateExpression(expression)).toThrow(ExpressionError);
    expect(() => evaluateExpression(expression)).toThrow(message);
  });

  it('evaluates results that are exactly 0 or very large without calling them out of range', () => {
    expect(evaluateExpression('0 * 1e300 + 5 * 0')).toBe(0);
    expect(evaluateExpression('0 / 7 + 0 ^ 2 + 0.000e-5')).toBe(0);
    expect(evaluateExpression('1e308 + 1e307')).toBeCloseTo(1.1e308, -300);
    expect(evaluateExpression('round(1e308, 2)')).toBe(1e308);
    expect(evaluateExpression('1e-300 * 1e-10')).toBeCloseTo(1e-310, 320);
  });

  it('counts each parenthesis, call, sign and power as one level, up to MAX_EXPRESSION_DEPTH', () => {
    const nested = (levels: number) => `${'('.repeat(levels)}1${')'.repeat(levels)}`;
    expect(evaluateExpression(nested(MAX_EXPRESSION_DEPTH))).toBe(1);
    expect(() => evaluateExpression(nested(MAX_EXPRESSION_DEPTH + 1))).toThrow(
      `the expression is nested too deeply (at most ${MAX_EXPRESSION_DEPTH} levels`,
    );
    expect(evaluateExpression(`${'-'.repeat(MAX_EXPRESSION_DEPTH)}1`)).toBe(1);
    expect(() => evaluateExpression(`${'-'.repeat(MAX_EXPRESSION_DEPTH + 1)}1`)).toThrow(/nested too deeply/);
    expect(evaluateExpression(`${'abs('.repeat(MAX_EXPRESSION_DEPTH - 1)}-1${')'.repeat(MAX_EXPRESSION_DEPTH - 1)}`)).toBe(1);
    expect(() => evaluateExpression(`${'abs('.repeat(MAX_EXPRESSION_DEPTH + 1)}1${')'.repeat(MAX_EXPRESSION_DEPTH + 1)}`)).toThrow(
      /nested too deeply/,
    );
    expect(evaluateExpression(`1${'^1'.repeat(MAX_EXPRESSION_DEPTH)}`)).toBe(1);
    expect(() => evaluateExpression(`1${'^1'.repeat(MAX_EXPRESSION_DEPTH + 1)}`)).toThrow(/nested too deeply/);
  });

  it('bounds the length and the nesting depth of an expression', () => {
    expect(() => evaluateExpression(`1${'+1'.repeat(MAX_EXPRESSION_CHARS)}`)).toThrow(/too long/);
    expect(evaluateExpression(`1${'+1'.repeat(200)}`)).toBe(201);
    expect(() => evaluateExpression(`${'('.repeat(100)}1${')'.repeat(100)}`)).toThrow(/nested too deeply/);
    expect(() => evaluateExpression(`${'-'.repeat(200)}1`)).toThrow(/nested too deeply/);
    expect(evaluateExpression(`${'('.repeat(20)}1${')'.repeat(20)}`)).toBe(1);
  });
});
