// Lint the TypeScript sources with the recommended rules; build output and user dirs are ignored.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.node-red/**', 'coverage/**', 'examples/**', 'test-output/**', 'bench/results/**', 'nodes/**/*.html'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Node-RED's constructor idiom: `const node = this` for use in callbacks.
    files: ['nodes/**/*.ts'],
    rules: { '@typescript-eslint/no-this-alias': 'off' },
  },
  {
    // The editor helpers run in the browser, next to Node-RED's editor (jQuery, RED).
    files: ['resources/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { window: 'readonly', $: 'readonly', RED: 'readonly' } },
  },
  {
    files: ['scripts/**/*.js', 'bin/**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
