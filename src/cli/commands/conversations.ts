import { ApiClient, EXIT_CODES } from '../api-client.js';
import { GLOBAL_OPTIONS_HELP, parseCommandArguments, parsePositiveInteger, resolveConnection } from '../cli-options.js';
import type { CommandContext } from '../command.js';
import { oneLine } from '../terminal.js';

const OPTIONS = {
  limit: { type: 'string', short: 'n' },
  cursor: { type: 'string' },
  all: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

/** `chatwait conversations --help`. */
export const CONVERSATIONS_HELP = `Usage: chatwait conversations [options]

Lists conversations, most recently active first: id, last activity (local time), turns, title.
When there are more, the last line (on stderr) says how to get the next page.

Options:
  -n, --limit N      conversations per page, 1 to 100 (default 20)
  --cursor CURSOR    start at this page (the next_cursor of the previous one)
  --all              follow every page to the end
  --json             print {"conversations": [...], "next_cursor": ...} as the API does

${GLOBAL_OPTIONS_HELP}
`;

/** A conversation as listed by the API. */
interface ConversationSummary {
  context_id: string;
  title: string;
  created_at: string;
  updated_at: string;
  turn_count: number;
}

interface ConversationPage {
  conversations: ConversationSummary[];
  next_cursor: string | null;
}

/** `chatwait conversations`: lists conversations, page by page. */
export async function runConversations({ args, env, terminal }: CommandContext): Promise<number> {
  const { values } = parseCommandArguments(args, OPTIONS);
  const { out, err } = terminal;
  if (values.help) {
    out.write(CONVERSATIONS_HELP);
    return EXIT_CODES.OK;
  }
  const limit = parsePositiveInteger('limit', values.limit, 100) ?? 20;
  const client = new ApiClient(resolveConnection(values, env));
  const conversations: ConversationSummary[] = [];
  let cursor = values.cursor;
  let nextCursor: string | null;
  do {
    const query = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    const { body } = await client.json<ConversationPage>(`/api/v1/conversations?${query}`);
    conversations.push(...body.conversations);
    nextCursor = body.next_cursor;
    cursor = nextCursor ?? undefined;
  } while (values.all && nextCursor);

  if (values.json) {
    out.line(out.json(JSON.stringify({ conversations, next_cursor: nextCursor })));
    return EXIT_CODES.OK;
  }
  const { cyan, dim } = out.style;
  // What the server sent, shown cleaned of control characters (a title could hold escape sequences).
  const rows = conversations.map((conversation) => ({
    id: oneLine(String(conversation.context_id)),
    time: oneLine(formatTime(String(conversation.updated_at))),
    turns: `${Number(conversation.turn_count)} turn${conversation.turn_count === 1 ? '' : 's'}`,
    title: oneLine(String(conversation.title)),
  }));
  const idWidth = Math.max(0, ...rows.map((row) => row.id.length));
  for (const row of rows) out.line(`${cyan(row.id.padEnd(idWidth))}  ${dim(row.time)}  ${dim(row.turns.padStart(9))}  ${row.title}`);
  if (conversations.length === 0) err.line(err.style.dim('No conversations yet.'));
  if (nextCursor) err.line(err.style.dim(`More: chatwait conversations --limit ${limit} --cursor ${oneLine(String(nextCursor))}`));
  return EXIT_CODES.OK;
}

/** An ISO time as local `YYYY-MM-DD HH:MM`. */
function formatTime(iso: string): string {
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return iso;
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())} ${pad(time.getHours())}:${pad(time.getMinutes())}`;
}
