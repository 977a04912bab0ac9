import { tool } from '@openai/agents-core';
import { z } from 'zod';
import type { ChatTool } from './chat-tool.js';
import { convertUnits, UNIT_SUMMARY, unitLabel } from './units.js';

/** `convert_units`: converts a value between units of one quantity (length, mass, temperature, …). */
export function createConvertUnitsTool(): ChatTool {
  return tool({
    name: 'convert_units',
    description: `Converts a value from one unit to another of the same kind: ${UNIT_SUMMARY}. Units by name or symbol: km, miles, °F, kg, lb, L, gal, MB, GiB, mph, kWh, psi, …`,
    parameters: z.object({
      value: z.number().describe('The amount to convert, for example 5'),
      from_unit: z.string().describe('The unit of the value, for example "km"'),
      to_unit: z.string().describe('The unit wanted, for example "miles"'),
    }),
    errorFunction: null,
    execute: ({ value, from_unit, to_unit }) => {
      const result = convertUnits(value, from_unit, to_unit);
      // The word agrees with the number as written: 1.00000000001 km is "1 kilometer".
      const [amount, converted] = [format(value), format(result.value)];
      return `${amount} ${unitLabel(result.from, Number(amount))} = ${converted} ${unitLabel(result.to, Number(converted))}`;
    },
  });
}

/** Ten significant digits: 5 km is 3.106855961 miles, not 3.1068559611866697. */
function format(value: number): string {
  return String(Number(value.toPrecision(10)));
}
