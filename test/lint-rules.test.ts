import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const eslint = new ESLint({ cwd: ROOT });

/** The import-direction errors ESLint reports for `code` as if it were the file at `path` (which need not exist). */
async function directionErrors(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\n`, { filePath: resolve(ROOT, path) });
  // A snippet that does not parse gets no rule's errors at all: that would pass for the wrong reason.
  expect(result!.messages.filter((message) => message.fatal)).toEqual([]);
  return result!.messages
    .filter((message) => message.ruleId === '@typescript-eslint/no-restricted-imports')
    .map((message) => message.message);
}

/** [file, an import its folder may not make, one it may make]. */
const CASES: [string, string, string][] = [
  ['src/protocol/events.ts', "import { value } from '../config.js';", "import { value } from './turn.js';"],
  ['src/protocol/events.ts', "import { value } from 'node:fs';", "import { value } from 'zod';"],
  ['src/model/tool-loop.ts', "import { value } from '../turns/turn-manager.js';", "import { value } from '../protocol/turn.js';"],
  [
    'src/model/tools/calculator.ts',
    "import { value } from '../../observability/metrics.js';",
    "import { value } from '../../observability/logger.js';",
  ],
  ['src/store/sqlite-store.ts', "import { value } from '../model/chat-model.js';", "import { value } from '../errors.js';"],
  ['src/streams/replay-log.ts', "import { value } from '../store/conversation-store.js';", "import { value } from '../protocol/index.js';"],
  ['src/turns/turn-manager.ts', "import { value } from '../server/sse.js';", "import { value } from '../streams/replay-log.js';"],
  ['src/turns/turn-manager.ts', "import { value } from '../observability/metrics.js';", "import { value } from '../model/chat-model.js';"],
  [
    'src/observability/metrics.ts',
    "import type { value } from '../turns/turn-generation.js';",
    "import type { value } from '../config.js';",
  ],
  ['src/config.ts', "import { value } from './errors.js';", "import { value } from 'zod';"],
  ['src/app/create-services.ts', "import { value } from '../server/build-app.js';", "import { value } from '../turns/turn-manager.js';"],
  ['src/cli/commands/ask.ts', "import { value } from '../../protocol/index.js';", "import type { value } from '../../protocol/index.js';"],
  ['src/cli/commands/ask.ts', "import { value } from '../../server/sse.js';", "import { value } from '../../client/index.js';"],
  ['src/client/follow-turn.ts', "import { value } from '../protocol/events.js';", "import { type value } from '../protocol/events.js';"],
  ['src/client/follow-turn.ts', "import { value } from '../cli/terminal.js';", "import { value } from './sse-parser.js';"],
  [
    'web/src/use-chat.ts',
    "import type { value } from '../../src/server/build-app.js';",
    "import { value } from '../../src/client/index.js';",
  ],
  [
    'web/src/components/MessageView.tsx',
    "import { value } from '../../../src/protocol/index.js';",
    "import type { value } from '../../../src/protocol/index.js';",
  ],
];

describe('the lint rules of the import direction', () => {
  it.each(CASES)('in %s, refuses %s and accepts %s', async (path, forbidden, allowed) => {
    const refused = await directionErrors(path, forbidden);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/may import (only|nothing of ours)/);
    expect(await directionErrors(path, allowed)).toEqual([]);
  });

  it('leaves the server free to import every layer', async () => {
    const imports = ['../app/create-services.js', '../turns/turn-manager.js', '../observability/metrics.js', '../store/create-store.js'];
    expect(
      await directionErrors('src/server/build-app.ts', imports.map((path, index) => `import { value${index} } from '${path}';`).join('\n')),
    ).toEqual([]);
  });
});
