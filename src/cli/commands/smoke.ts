import { ApiClient, CliError, ConnectionError, EXIT_CODES } from '../api-client.js';
import { describeError } from '../answer-view.js';
import { GLOBAL_OPTIONS_HELP, parseCommandArguments, resolveConnection } from '../cli-options.js';
import type { CommandContext } from '../command.js';
import { oneLine } from '../terminal.js';
import { SMOKE_CHECKS, type SmokeState } from './smoke-checks.js';

/** How long one check may take before it fails. */
const CHECK_TIMEOUT_MS = 120_000;

/** `chatwait smoke --help`. */
export const SMOKE_HELP = `Usage: chatwait smoke [options]

Checks a running server end to end, as the original project's test_api.py did, and prints a line
per check: health, liveness and readiness; the wait route; the streaming route (event ids, token
order and index continuity, tokens joined = final_output); the stored answers; resuming a cut
stream with Last-Event-ID and with last_token_index; cancelling an answer; listing conversations
page by page; the JSON error format (422, 400, 404). The conversations it creates (smoke-<uuid>)
are deleted at the end. It sends a few short messages to the server's model.

Exits 0 when every check passes, 1 when one fails, 3 when the server cannot be reached.

${GLOBAL_OPTIONS_HELP}
`;

/** `chatwait smoke`: an end-to-end check of a running server. */
export async function runSmoke({ args, env, terminal }: CommandContext): Promise<number> {
  const { values } = parseCommandArguments(args, {});
  const { out } = terminal;
  if (values.help) {
    out.write(SMOKE_HELP);
    return EXIT_CODES.OK;
  }
  const client = new ApiClient(resolveConnection(values, env));
  const state: SmokeState = { client, contextIds: [] };
  const { green, red, dim } = out.style;
  out.line(dim(`smoke test of ${client.connection.url}`));
  let failed = 0;
  for (const [index, smokeCheck] of SMOKE_CHECKS.entries()) {
    const started = performance.now();
    try {
      const detail = await smokeCheck.run(state, AbortSignal.timeout(CHECK_TIMEOUT_MS));
      const took = `${Math.round(performance.now() - started)} ms`;
      // Details and failures quote what the server sent: shown cleaned of control characters.
      out.line(`${green('ok  ')} ${smokeCheck.name}${dim(` — ${detail ? `${oneLine(detail)}, ` : ''}${took}`)}`);
    } catch (error) {
      failed++;
      out.line(
        `${red('FAIL')} ${smokeCheck.name}: ${error instanceof CliError ? describeError(error) : oneLine(error instanceof Error ? error.message : String(error))}`,
      );
      if (error instanceof ConnectionError && index === 0) {
        out.line(red(`${SMOKE_CHECKS.length - 1} checks skipped: the server cannot be reached.`));
        return EXIT_CODES.UNREACHABLE;
      }
    }
  }
  const passed = SMOKE_CHECKS.length - failed;
  out.line(failed === 0 ? green(`${passed} checks passed`) : red(`${failed} of ${SMOKE_CHECKS.length} checks failed`));
  return failed === 0 ? EXIT_CODES.OK : EXIT_CODES.FAILED;
}
