/** The longest expression the calculator accepts, in characters. */
export const MAX_EXPRESSION_CHARS = 500;
/** The deepest nesting the parser follows before refusing: each parenthesis, function call, sign and power is one level. */
export const MAX_EXPRESSION_DEPTH = 64;

/** An expression that cannot be evaluated; the message says why, in words fit for the model and the user. */
export class ExpressionError extends Error {
  override name = 'ExpressionError';
}

type Token =
  | { kind: 'number'; value: number; at: number }
  | { kind: 'name'; value: string; at: number }
  | { kind: 'operator'; value: '+' | '-' | '*' | '/' | '%' | '^'; at: number }
  | { kind: '(' | ')' | ','; at: number }
  | { kind: 'end'; at: number };

const CONSTANTS: Readonly<Record<string, number>> = { pi: Math.PI, e: Math.E, tau: 2 * Math.PI };

const FUNCTIONS: Readonly<Record<string, { arity: [number, number]; apply: (...values: number[]) => number }>> = {
  sqrt: { arity: [1, 1], apply: (x) => (x < 0 ? fail('sqrt of a negative number is not a real number') : Math.sqrt(x)) },
  cbrt: { arity: [1, 1], apply: Math.cbrt },
  abs: { arity: [1, 1], apply: Math.abs },
  round: { arity: [1, 2], apply: (x, digits = 0) => roundTo(x, digits) },
  floor: { arity: [1, 1], apply: Math.floor },
  ceil: { arity: [1, 1], apply: Math.ceil },
  min: { arity: [1, 100], apply: Math.min },
  max: { arity: [1, 100], apply: Math.max },
  ln: { arity: [1, 1], apply: (x) => (x <= 0 ? fail('ln is only defined for positive numbers') : Math.log(x)) },
  log: { arity: [1, 1], apply: (x) => (x <= 0 ? fail('log is only defined for positive numbers') : Math.log10(x)) },
  exp: { arity: [1, 1], apply: Math.exp },
  sin: { arity: [1, 1], apply: Math.sin },
  cos: { arity: [1, 1], apply: Math.cos },
  tan: { arity: [1, 1], apply: Math.tan },
};

/** The names the calculator knows, for its description. */
export const EXPRESSION_NAMES = { functions: Object.keys(FUNCTIONS), constants: Object.keys(CONSTANTS) };

/**
 * Evaluates an arithmetic expression: numbers (decimals, `1e3`), `+ - * / %`, `^` or `**` (right
 * associative, binding tighter than a unary minus: `-2^2` is -4), parentheses, the functions and
 * constants above. A tokenizer and a recursive-descent parser; nothing is ever passed to `eval`.
 */
export function evaluateExpression(text: string): number {
  if (text.length > MAX_EXPRESSION_CHARS) fail(`the expression is too long (at most ${MAX_EXPRESSION_CHARS} characters)`);
  const parser = new Parser(tokenize(text));
  const value = parser.parseExpression(0);
  parser.expectEnd();
  if (!Number.isFinite(value)) fail('the result is too large to represent');
  return value;
}

/** A result as people write it: at most 15 significant digits, so 0.1 + 0.2 shows as 0.3. */
export function formatNumber(value: number): string {
  if (Object.is(value, -0)) return '0';
  return String(Number(value.toPrecision(15)));
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < text.length) {
    const character = text[index]!;
    if (/\s/.test(character)) {
      index++;
      continue;
    }
    const number = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(text.slice(index));
    if (number) {
      tokens.push({ kind: 'number', value: checkedLiteral(number[0], index), at: index });
      index += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z_0-9]*/.exec(text.slice(index));
    if (name) {
      tokens.push({ kind: 'name', value: name[0].toLowerCase(), at: index });
      index += name[0].length;
      continue;
    }
    if (text.startsWith('**', index)) {
      tokens.push({ kind: 'operator', value: '^', at: index });
      index += 2;
      continue;
    }
    const operator = { '+': '+', '-': '-', '−': '-', '*': '*', '×': '*', '/': '/', '÷': '/', '%': '%', '^': '^' }[character] as
      '+' | '-' | '*' | '/' | '%' | '^' | undefined;
    if (operator) tokens.push({ kind: 'operator', value: operator, at: index });
    else if (character === '(' || character === ')' || character === ',') tokens.push({ kind: character, at: index });
    else fail(`unexpected character "${character}" at position ${index + 1}`);
    index++;
  }
  tokens.push({ kind: 'end', at: text.length });
  return tokens;
}

const BINARY_PRECEDENCE: Readonly<Record<string, number>> = { '+': 1, '-': 1, '*': 2, '/': 2, '%': 2 };

class Parser {
  readonly #tokens: Token[];
  #index = 0;
  #depth = 0;

  constructor(tokens: Token[]) {
    this.#tokens = tokens;
  }

  /** Precedence climbing over the left-associative operators; powers and signs are handled below them. */
  parseExpression(minPrecedence: number): number {
    let left = this.#parseUnary();
    for (;;) {
      const token = this.#peek();
      if (token.kind !== 'operator' || token.value === '^') return left;
      const precedence = BINARY_PRECEDENCE[token.value]!;
      if (precedence <= minPrecedence) return left;
      this.#index++;
      const right = this.parseExpression(precedence);
      const operand = left;
      const mayUnderflow = (token.value === '*' && left !== 0 && right !== 0) || (token.value === '/' && left !== 0);
      left = representable(
        applyBinary(token.value, left, right),
        mayUnderflow,
        () => `${formatNumber(operand)} ${token.value} ${formatNumber(right)}`,
      );
    }
  }

  expectEnd(): void {
    const token = this.#peek();
    if (token.kind === ')') fail(`unmatched ")" at position ${token.at + 1}`);
    if (token.kind !== 'end') fail(`unexpected ${describe(token)} at position ${token.at + 1}`);
  }

  #parseUnary(): number {
    const token = this.#peek();
    if (token.kind === 'operator' && (token.value === '-' || token.value === '+')) {
      this.#index++;
      const operand = this.#nested(() => this.#parseUnary());
      return token.value === '-' ? -operand : operand;
    }
    return this.#parsePower();
  }

  /** `a ^ b ^ c` is `a ^ (b ^ c)`, and an exponent may carry its own sign: `2 ^ -1`. */
  #parsePower(): number {
    const base = this.#parsePrimary();
    const token = this.#peek();
    if (token.kind !== 'operator' || token.value !== '^') return base;
    this.#index++;
    const exponent = this.#nested(() => this.#parseUnary());
    if (base === 0 && exponent < 0) fail('division by zero (0 to a negative power)');
    const value = base ** exponent;
    if (Number.isNaN(value)) fail('a negative number to a fractional power is not a real number');
    return representable(value, base !== 0, () => `${formatNumber(base)} ^ ${formatNumber(exponent)}`);
  }

  #parsePrimary(): number {
    const token = this.#next();
    if (token.kind === 'number') return token.value;
    if (token.kind === '(') {
      const value = this.#nested(() => this.parseExpression(0));
      this.#expect(')', token);
      return value;
    }
    if (token.kind === 'name') {
      // Own properties only: "constructor" or "toString" must never reach Object.prototype.
      if (Object.hasOwn(FUNCTIONS, token.value)) return this.#parseCall(token.value, FUNCTIONS[token.value]!, token.at);
      if (Object.hasOwn(CONSTANTS, token.value)) return CONSTANTS[token.value]!;
      fail(`unknown name "${token.value}" at position ${token.at + 1}`);
    }
    if (token.kind === 'end') fail('the expression ends too early: a number is missing');
    fail(`expected a number at position ${token.at + 1}, found ${describe(token)}`);
  }

  #parseCall(name: string, fn: (typeof FUNCTIONS)[string], at: number): number {
    const open = this.#next();
    if (open.kind !== '(') fail(`${name} needs parentheses, as in ${name}(2) (position ${at + 1})`);
    const values: number[] = [];
    if (this.#peek().kind !== ')') {
      for (;;) {
        values.push(this.#nested(() => this.parseExpression(0)));
        if (this.#peek().kind !== ',') break;
        this.#index++;
      }
    }
    this.#expect(')', open);
    const [least, most] = fn.arity;
    if (values.length < least || values.length > most) {
      fail(`${name} takes ${least === most ? least : `${least} to ${most}`} argument${most === 1 ? '' : 's'}, not ${values.length}`);
    }
    return representable(fn.apply(...values), false, () => `${name}(${values.map(formatNumber).join(', ')})`);
  }

  #nested<T>(parse: () => T): T {
    if (++this.#depth > MAX_EXPRESSION_DEPTH) {
      fail(`the expression is nested too deeply (at most ${MAX_EXPRESSION_DEPTH} levels of parentheses, function calls, signs and powers)`);
    }
    try {
      return parse();
    } finally {
      this.#depth--;
    }
  }

  #expect(kind: ')', opening: Token): void {
    const token = this.#next();
    if (token.kind === kind) return;
    if (token.kind === 'end') fail(`missing ")" for the "(" at position ${opening.at + 1}`);
    fail(`expected ")" at position ${token.at + 1}, found ${describe(token)}`);
  }

  #peek(): Token {
    return this.#tokens[this.#index]!;
  }

  #next(): Token {
    const token = this.#tokens[this.#index]!;
    if (token.kind !== 'end') this.#index++;
    return token;
  }
}

function applyBinary(operator: '+' | '-' | '*' | '/' | '%', left: number, right: number): number {
  switch (operator) {
    case '+':
      return left + right;
    case '-':
      return left - right;
    case '*':
      return left * right;
    case '/':
      if (right === 0) fail('division by zero');
      return left / right;
    case '%':
      if (right === 0) fail('division by zero (remainder of a division by 0)');
      return left % right;
  }
}

/** The largest finite double, and the smallest positive one, as people read them. */
const LARGEST = '1.8e308';
const SMALLEST = '5e-324';

/** A number literal's value; one too large or too small for a double is refused where it is written. */
function checkedLiteral(text: string, at: number): number {
  const value = Number(text);
  if (!Number.isFinite(value)) fail(`the number ${text} at position ${at + 1} is too large to represent (the largest is about ${LARGEST})`);
  if (value === 0 && /[1-9]/.test(text.replace(/[eE].*$/, '')))
    fail(`the number ${text} at position ${at + 1} is too small to represent (the smallest is about ${SMALLEST})`);
  return value;
}

/**
 * An intermediate result, refused where it stops being a real number: beyond ±1.8e308 (which would
 * turn into Infinity and then NaN), or, when `mayUnderflow` (a product, quotient or power of
 * nonzero numbers), rounded all the way to 0.
 */
function representable(value: number, mayUnderflow: boolean, operation: () => string): number {
  if (Number.isNaN(value)) fail(`the result of ${operation()} is not a real number`);
  if (!Number.isFinite(value)) fail(`the result of ${operation()} is too large to represent (beyond ±${LARGEST})`);
  if (value === 0 && mayUnderflow) fail(`the result of ${operation()} is too small to represent (closer to 0 than ${SMALLEST})`);
  return value;
}

function roundTo(value: number, digits: number): number {
  if (!Number.isInteger(digits) || digits < 0 || digits > 15) fail('round takes a whole number of digits from 0 to 15');
  const factor = 10 ** digits;
  // A number too large to scale has no digits after the point to round.
  return Number.isFinite(value * factor) ? Math.round(value * factor) / factor : value;
}

function describe(token: Token): string {
  if (token.kind === 'number') return `the number ${token.value}`;
  if (token.kind === 'name') return `"${token.value}"`;
  if (token.kind === 'operator') return `"${token.value}"`;
  if (token.kind === 'end') return 'the end';
  return `"${token.kind}"`;
}

function fail(message: string): never {
  throw new ExpressionError(message);
}
