import { parseArgs } from 'node:util';
import { ConfigError } from '../config.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { openConversationStore } from '../store/create-store.js';
import { redactUrl } from '../store/postgres-pool.js';
import { copyConversations, type CopySummary } from './copy-store.js';

const USAGE =
  'usage: npm run store:copy -- --from <DATABASE_URL> --to <DATABASE_URL>   (e.g. --from sqlite:./data/chatwait.db --to postgres://…)';

const describe = (summary: CopySummary) =>
  `${summary.conversations} conversations (${summary.newConversations} new), ${summary.turnsAdded} turns copied, ${summary.turnsAlreadyThere} already there` +
  (summary.turnsSkipped > 0
    ? `; skipped ${summary.turnsSkipped} ${summary.turnsSkipped === 1 ? 'turn' : 'turns'} whose client_message_id already exists in the target`
    : '');

// An admin tool, not an instance: it writes no instances row, beats no heartbeat and reaps no one's turns.
const ADMIN = { lease: false };

/** `npm run store:copy`: copies every conversation from one store to another (SQLite → PostgreSQL, or any pair). Exit 0 done, 1 failed, 2 usage. */
async function main(argv: string[]): Promise<number> {
  let from: string;
  let to: string;
  try {
    const { values } = parseArgs({
      args: argv,
      options: { from: { type: 'string' }, to: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!values.from || !values.to) throw new Error('both --from and --to are needed');
    [from, to] = [values.from.trim(), values.to.trim()];
  } catch (error) {
    process.stderr.write(`store:copy: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (from === to) {
    process.stderr.write('store:copy: --from and --to name the same store; nothing to do.\n');
    return 2;
  }
  const stores: ConversationStore[] = [];
  try {
    const source = await openConversationStore(from, ADMIN);
    stores.push(source);
    const target = await openConversationStore(to, ADMIN);
    stores.push(target);
    process.stderr.write(`copying ${redactUrl(from)} → ${redactUrl(to)}\n`);
    const summary = await copyConversations(source, target, (progress) => process.stderr.write(`  … ${describe(progress)}\n`));
    process.stdout.write(`Copied ${describe(summary)}.\n`);
    return 0;
  } catch (error) {
    const message =
      error instanceof ConfigError
        ? error.message
        : `the copy stopped: ${(error as Error).message} (run it again: what was copied stays, nothing is copied twice)`;
    process.stderr.write(`store:copy: ${message}\n`);
    return 1;
  } finally {
    await Promise.allSettled(stores.map((store) => store.close()));
  }
}

process.exitCode = await main(process.argv.slice(2));
