// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    files: ['test/**', 'scripts/**', 'bench/**', '**/*.test.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Plain JavaScript run by Node (the benchmark processes): Node's globals are defined.
    files: ['**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(
        ['process', 'console', 'URL', 'performance', 'setTimeout', 'clearTimeout', 'setImmediate', 'setInterval', 'clearInterval', 'Buffer', 'fetch'].map((name) => [name, 'readonly']),
      ),
    },
  },
);
