import { tool } from '@openai/agents';
import { z } from 'zod';
import type { ChatTool } from './chat-tool.js';
import { convertUnits, UNIT_SUMMARY } from './units.js';

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
      return `${format(value)} ${plural(result.from, value)} = ${format(result.value)} ${plural(result.to, result.value)}`;
    },
  });
}

/** Ten significant digits: 5 km is 3.106855961 miles, not 3.1068559611866697. */
function format(value: number): string {
  return String(Number(value.toPrecision(10)));
}

const IRREGULAR: Readonly<Record<string, string>> = { foot: 'feet', inch: 'inches', psi: 'psi' };

/** "3 miles per hour", "2 degrees Celsius", "10 square feet": the counted word takes the plural. */
function plural(name: string, value: number): string {
  if (Math.abs(value) === 1) return name;
  if (name.startsWith('degree ')) return name.replace('degree', 'degrees');
  const split = name.search(/ (per|of) /);
  const head = split < 0 ? name : name.slice(0, split);
  const tail = split < 0 ? '' : name.slice(split);
  const words = head.split(' ');
  const last = words.pop()!;
  return [...words, IRREGULAR[last] ?? `${last}s`].join(' ') + tail;
}
