// Lint: ESLint's and typescript-eslint's recommended rules, type-aware where a promise could be
// dropped (a rejected promise nobody awaits ended the watch daemon once). Formatting is Prettier's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// In the CLI's startup snapshot a dynamic import() of a package or built-in at run time has no
// loader: built-ins go through util/builtin.ts, our own modules are bundled in.
const SNAPSHOT_IMPORTS = {
  selector: 'ImportExpression[source.value=/^(node:|[a-z@])/]',
  message:
    'a dynamic import of a package or built-in fails in the startup snapshot: use loadBuiltin (util/builtin.ts) or a static import',
};

// The layers of src/, lowest first (docs/design.md, "Layers"): a folder imports only from the
// folders before it, statically or by import(). src/net's sub-folders keep an order of their own.
const LAYERS = [
  'util',
  'model',
  'net',
  'db',
  'runtime',
  'storage',
  'ops',
  'lifecycle',
  'frontend',
  'cni',
  'netavark',
  'daemon',
  'cli',
];
const NET = ['rtnetlink', 'netns', 'link-state', 'addresses', 'links', 'shaping', 'routes', 'dhcp', 'ipam', 'firewall'];

/** A lint block for one layer folder: `higher` is a regex of the import paths that reach above it. */
function layer(folder, higher) {
  const message = `src/${folder} may import only from the layers before it (docs/design.md, "Layers")`;
  // esquery's regex literal ends at the first slash: a slash is written \x2F there.
  const selector = `ImportExpression[source.value=/${higher.replaceAll('/', '\\x2F')}/]`;
  return {
    files: [`src/${folder}/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: higher, message }] }],
      'no-restricted-syntax': ['error', SNAPSHOT_IMPORTS, { selector, message }],
    },
  };
}

const above = (list, i) => list.slice(i + 1).join('|');
const layerBlocks = LAYERS.flatMap((folder, i) => {
  const top = `^(\\.\\./)+(${above(LAYERS, i)})/`;
  if (folder !== 'net') return i === LAYERS.length - 1 ? [] : [layer(folder, top)];
  return NET.map((sub, j) => layer(`net/${sub}`, j === NET.length - 1 ? top : `${top}|^\\.\\./(${above(NET, j)})/`));
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests hand their promises to tap (t.test), which awaits them.
    files: ['src/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      'no-restricted-syntax': ['error', SNAPSHOT_IMPORTS],
    },
  },
  ...layerBlocks,
  {
    files: ['**/*.mjs', 'scripts/**/*.js'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
      },
    },
  },
);
