import { tool } from '@openai/agents-core';
import { z } from 'zod';
import type { ChatTool } from './chat-tool.js';
import { ToolFailure } from './chat-tool.js';

/** `get_current_time`: the date and time now in an IANA time zone (a city of one works too: "Tokyo"). */
export function createCurrentTimeTool(now: () => Date = () => new Date()): ChatTool {
  return tool({
    name: 'get_current_time',
    description:
      'Returns the current date, time, weekday and UTC offset in a time zone. Use it whenever the user asks what time or day it is somewhere.',
    parameters: z.object({
      time_zone: z.string().describe('An IANA time zone such as "Asia/Tokyo", "Europe/London", "America/New_York" or "UTC"'),
    }),
    errorFunction: null,
    execute: ({ time_zone }) => describeTime(now(), resolveTimeZone(time_zone)),
  });
}

/** The canonical IANA name for a zone, matched without regard to case, or by its city ("new york" → America/New_York). */
export function resolveTimeZone(text: string): string {
  const wanted = text.trim().replace(/\s+/g, '_').toLowerCase();
  if (wanted === 'utc' || wanted === 'gmt' || wanted === 'z') return 'UTC';
  const zones = Intl.supportedValuesOf('timeZone');
  const exact = zones.find((zone) => zone.toLowerCase() === wanted);
  if (exact) return exact;
  const byCity = zones.find((zone) => zone.toLowerCase().endsWith(`/${wanted}`));
  if (byCity) return byCity;
  // Zones Intl accepts but does not list (aliases such as US/Pacific or Asia/Calcutta).
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: text.trim() }).resolvedOptions().timeZone;
  } catch {
    throw new ToolFailure(
      `"${text}" is not a time zone I know. Use an IANA name such as Asia/Tokyo, Europe/Paris, America/New_York or UTC.`,
    );
  }
}

function describeTime(date: Date, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      weekday: 'long',
      timeZoneName: 'longOffset',
    })
      .formatToParts(date)
      .map((part) => [part.type, part.value]),
  );
  const offset = parts.timeZoneName === 'GMT' ? 'UTC+00:00' : String(parts.timeZoneName).replace('GMT', 'UTC');
  return `${parts.weekday} ${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} in ${timeZone} (${offset})`;
}
