// Bundles the executables (dist/bundle/pipewright.mjs, dist/bundle/pipework.mjs): a CLI process
// then loads a few files instead of resolving and compiling ~80 modules, which is most of its
// start-up time. Code splitting keeps every lazy import lazy (a command loads only what it uses);
// native and rarely used packages stay outside and load from node_modules on demand.
import { build } from 'esbuild';

await build({
  entryPoints: { pipewright: 'src/cli/main.ts', pipework: 'src/cli/pipework-bin.ts' },
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['better-sqlite3', 'netlink', 'etcd3', 'ajv', 'yaml'],
  // Bundled CommonJS code may call require(): give each module one.
  banner: { js: "import { createRequire as __pwCreateRequire } from 'node:module'; const require = __pwCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
