import { ApiClient, EXIT_CODES } from '../api-client.js';
import { GLOBAL_OPTIONS_HELP, parseCommandArguments, resolveConnection } from '../cli-options.js';
import type { CommandContext } from '../command.js';
import { oneLine } from '../terminal.js';

const OPTIONS = { json: { type: 'boolean' } } as const;

/** `chatwait health --help`. */
export const HEALTH_HELP = `Usage: chatwait health [options]

Calls /health, /api/v1/health/live and /api/v1/health/ready and prints what they say.
Exits 0 when the server is healthy and ready, 1 when it is degraded or not ready, 3 when it
cannot be reached.

Options:
  --json             print {"health": ..., "live": ..., "ready": ...} with the routes' JSON

${GLOBAL_OPTIONS_HELP}
`;

interface Health {
  status: string;
  version?: string;
  environment?: string;
  model?: { provider?: string; name?: string; demo?: boolean };
  checks?: Record<string, { status?: string; detail?: string }>;
}

/** `chatwait health`: the server's health, liveness and readiness. */
export async function runHealth({ args, env, terminal }: CommandContext): Promise<number> {
  const { values } = parseCommandArguments(args, OPTIONS);
  const { out } = terminal;
  if (values.help) {
    out.write(HEALTH_HELP);
    return EXIT_CODES.OK;
  }
  const client = new ApiClient(resolveConnection(values, env));
  const health = await client.json<Health>('/health', { allowErrors: true });
  const live = await client.json<{ status?: string }>('/api/v1/health/live', { allowErrors: true });
  const ready = await client.json<{ status?: string; reason?: string }>('/api/v1/health/ready', { allowErrors: true });
  const good =
    health.status === 200 &&
    health.body?.status === 'healthy' &&
    live.body?.status === 'alive' &&
    ready.status === 200 &&
    ready.body?.status === 'ready';
  if (values.json) {
    out.line(out.json(JSON.stringify({ health: health.body, live: live.body, ready: ready.body })));
    return good ? EXIT_CODES.OK : EXIT_CODES.FAILED;
  }

  const { green, red, dim, bold } = out.style;
  // Every value the server sent is shown cleaned of control characters.
  const show = (value: unknown) => oneLine(String(value));
  const mark = (ok: boolean, text: unknown) => (ok ? green(show(text)) : red(show(text)));
  const body = health.body ?? { status: `HTTP ${health.status}` };
  const model = body.model ? `model ${show(body.model.provider)}/${show(body.model.name)}${body.model.demo ? ' (demo)' : ''}` : '';
  out.line(
    `${bold('health')}  ${mark(body.status === 'healthy', body.status ?? `HTTP ${health.status}`)}  ${dim(`chatwait ${show(body.version ?? '?')} (${show(body.environment ?? '?')}) ${model}`)}`,
  );
  for (const [name, check] of Object.entries(body.checks ?? {})) {
    out.line(
      `  ${show(name).padEnd(11)} ${mark(check.status === 'ok', check.status ?? '?')}${check.detail ? dim(`  ${show(check.detail)}`) : ''}`,
    );
  }
  out.line(`${bold('live')}    ${mark(live.body?.status === 'alive', live.body?.status ?? `HTTP ${live.status}`)}`);
  const readyText = ready.body?.status ?? `HTTP ${ready.status}`;
  out.line(`${bold('ready')}   ${mark(ready.status === 200, readyText)}${ready.body?.reason ? dim(`  ${show(ready.body.reason)}`) : ''}`);
  return good ? EXIT_CODES.OK : EXIT_CODES.FAILED;
}
