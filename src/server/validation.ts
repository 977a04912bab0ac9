import type { FastifySchemaCompiler } from 'fastify';
import type { z } from 'zod';
import type { ValidationDetail } from '../protocol/responses.js';

/** A request that did not match its schema, with zod's issues (inputs included) for the 422 `detail`. */
export class SchemaValidationError extends Error {
  override name = 'SchemaValidationError';
  readonly issues: z.core.$ZodIssue[];
  validationContext: string | undefined;

  constructor(issues: z.core.$ZodIssue[]) {
    super('request validation failed');
    this.issues = issues;
  }
}

/** Validates requests with their zod schemas, keeping each issue's input so a missing field can be told from a wrong one. */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema }) =>
  (data) => {
    const result = schema.safeParse(data, { reportInput: true });
    return result.success ? { value: result.data } : { error: new SchemaValidationError(result.error.issues) };
  };

/** Turns the issues into FastAPI's `detail` list: `{loc: ["body" | "query", field…], msg, type}`. */
export function toValidationDetails(error: SchemaValidationError): ValidationDetail[] {
  const location = error.validationContext === 'querystring' ? 'query' : (error.validationContext ?? 'body');
  return error.issues.map((issue) => {
    const path = issue.path.map((part) => (typeof part === 'symbol' ? String(part) : part));
    const loc = [location, ...path];
    // A request without a body reaches validation as null.
    const absent = issue.input === undefined || (issue.input === null && path.length === 0);
    if (issue.code === 'invalid_type' && absent) {
      const field = path.at(-1);
      return { loc, msg: field === undefined ? 'a JSON body is required' : `${String(field)} is required`, type: 'missing' };
    }
    return { loc, msg: issue.message, type: pydanticType(issue) };
  });
}

/** Names a zod issue the way FastAPI (pydantic) names its error types, for clients written against the original. */
function pydanticType(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'number' || issue.expected === 'int' ? 'int_parsing' : `${issue.expected}_type`;
    case 'too_small':
      return issue.origin === 'string' ? 'string_too_short' : issue.origin === 'number' ? 'greater_than_equal' : 'too_short';
    case 'too_big':
      return issue.origin === 'string' ? 'string_too_long' : issue.origin === 'number' ? 'less_than_equal' : 'too_long';
    case 'invalid_format':
      return issue.format === 'regex' ? 'string_pattern_mismatch' : 'value_error';
    case 'invalid_value':
      return 'enum';
    default:
      return 'value_error';
  }
}
