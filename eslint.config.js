// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Our modules under src/: its folders, and the files at its top (named without `.ts`). */
const SOURCE_MODULES = [
  'app',
  'cli',
  'client',
  'config',
  'errors',
  'limits',
  'main',
  'model',
  'observability',
  'protocol',
  'redis-connection',
  'server',
  'store',
  'streams',
  'turns',
  'version',
];

/** An import path that reaches one of `modules` of src/ from a folder of src/ (`../store/x.js`, `../../config.js`) or, `atTop`, from a file at its top (`./errors.js`). */
const reaching = (modules, atTop) => `^${atTop ? '\\./' : '(\\.\\./)+'}(${modules.join('|')})(\\/|\\.js$)`;

/**
 * The import direction of one folder of src/ (see the README's Layout): it may import its own files,
 * the modules in `allowed` (a folder, or one file of one: `observability/logger`), and those in
 * `typeOnly` with `import type` only; any other module of ours is a lint error.
 */
function importsOnly(folder, { allowed = [], typeOnly = [] }) {
  const atTop = folder.endsWith('.ts');
  const files = atTop ? [`src/${folder}`] : [`src/${folder}/**/*.ts`];
  const own = folder.replace(/\.ts$/, '');
  const whole = allowed.filter((module) => !module.includes('/'));
  const partly = allowed.filter((module) => module.includes('/'));
  const forbidden = SOURCE_MODULES.filter(
    (module) =>
      module !== own && !whole.includes(module) && !typeOnly.includes(module) && !partly.some((part) => part.startsWith(`${module}/`)),
  );
  const what = [...allowed, ...typeOnly.map((module) => `${module} (type-only)`)].join(', ');
  const message = `${own} may import ${what ? `only ${what}` : 'nothing of ours'}: the folders' import direction is in the README's Layout.`;
  const patterns = [];
  if (forbidden.length > 0) patterns.push({ regex: reaching(forbidden, atTop), message });
  for (const part of partly) {
    const [module, file] = part.split('/');
    // One file of a module may be used whole; the module's other files, only for their types when it is type-only.
    patterns.push({
      regex: `^(\\.\\./)+${module}\\/(?!${file}\\.js$)`,
      message,
      ...(typeOnly.includes(module) ? { allowTypeImports: true } : {}),
    });
  }
  const typeOnlyWhole = typeOnly.filter((module) => !partly.some((part) => part.startsWith(`${module}/`)));
  if (typeOnlyWhole.length > 0) patterns.push({ regex: reaching(typeOnlyWhole, atTop), allowTypeImports: true, message });
  return { files, rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] } };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'data/', 'web/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error', 'warn'] }],
      eqeqeq: ['error', 'always'],
    },
  },
  // The import direction between folders (a test shows each rule fires: test/lint-rules.test.ts).
  {
    // The wire format is shared with the page: zod is its only package, and nothing else of ours.
    files: ['src/protocol/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./',
              message: "protocol may import only its own files and zod: the folders' import direction is in the README's Layout.",
            },
            { regex: '^(?!zod(/|$)|\\.)', message: 'protocol may import only its own files and zod: the page uses it too.' },
          ],
        },
      ],
    },
  },
  importsOnly('config.ts', {}),
  importsOnly('errors.ts', { typeOnly: ['protocol'] }),
  importsOnly('version.ts', {}),
  importsOnly('redis-connection.ts', {}),
  importsOnly('observability', { allowed: ['config'] }),
  importsOnly('streams', { allowed: ['protocol', 'redis-connection'] }),
  importsOnly('limits', { allowed: ['errors', 'redis-connection'] }),
  importsOnly('store', { allowed: ['protocol', 'errors', 'config'] }),
  importsOnly('model', { allowed: ['protocol', 'config', 'errors', 'observability/logger'] }),
  importsOnly('turns', { allowed: ['model', 'store', 'streams', 'protocol', 'errors', 'config', 'observability/logger'] }),
  // The operator's commands (npm run store:copy) work on the stores only.
  importsOnly('admin', { allowed: ['store', 'config', 'errors', 'protocol'] }),
  importsOnly('app', {
    allowed: ['limits', 'model', 'store', 'streams', 'turns', 'protocol', 'errors', 'config', 'observability', 'version'],
  }),
  importsOnly('server', {
    allowed: ['app', 'limits', 'model', 'store', 'streams', 'turns', 'protocol', 'errors', 'config', 'observability', 'version'],
  }),
  // The clients may run the protocol's plain functions (event ids); its zod schemas would weigh on the page's bundle.
  importsOnly('client', { allowed: ['protocol/event-id'], typeOnly: ['protocol'] }),
  // version.ts only reads package.json: the terminal client shows its version too.
  importsOnly('cli', { allowed: ['client', 'version', 'protocol/event-id'], typeOnly: ['protocol'] }),
  {
    // The page runs in the browser: of src/ it may use the client module, and the protocol's types.
    files: ['web/src/**/*.{ts,tsx}'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^(\\.\\./)+src/(?!client/|protocol/)', message: 'The page may import only src/client and, type-only, src/protocol.' },
            {
              regex: '^(\\.\\./)+src/protocol/',
              allowTypeImports: true,
              message: 'The page may import only src/client and, type-only, src/protocol.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**', 'scripts/**', 'bench/**', '**/*.test.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Plain JavaScript run by Node (the benchmark processes): Node's globals are defined.
    files: ['**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'process',
          'console',
          'URL',
          'performance',
          'setTimeout',
          'clearTimeout',
          'setImmediate',
          'setInterval',
          'clearInterval',
          'Buffer',
          'fetch',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
);
