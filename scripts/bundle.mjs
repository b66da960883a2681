// Bundles the executables (dist/bundle/pipewright.mjs, dist/bundle/pipework.mjs): a CLI process
// then loads a few files instead of resolving and compiling ~80 modules. Code splitting keeps every
// lazy import lazy (a command loads only what it uses); native and rarely used packages stay
// outside and load from node_modules on demand.
//
// Then the CLI's V8 startup snapshot (dist/pipewright.blob): the whole CLI as one CommonJS file,
// run once by `node --build-snapshot` (src/cli/snapshot.ts), its initialized heap saved. The
// executable dist/bin/pipewright (native/pipewright.c) starts Node from it, so a command begins with commander and its
// command tree already loaded (measured: Node's own start-up plus ~1 ms, against ~25 ms for the
// bundle). A snapshot belongs to the Node binary that made it: after a Node upgrade, run
// `npm run build` again (as for the native addons); where none exists the executable runs the bundle.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { buildCodeCache, buildSnapshot } from './build-snapshot.mjs';

const EXTERNAL = ['better-sqlite3', 'ajv', 'yaml'];

/**
 * etcd3 (bundled: resolving and compiling its, gRPC's and protobufjs's ~150 files cost a command
 * with an etcd store ~0.4 s, and 20-40 s in an emulated VM) parses its protocol file each time it
 * is loaded. Parsed here once instead: its code gets the parsed definition (proto-loader's JSON form).
 */
const etcd3Protocol = {
  name: 'etcd3-protocol',
  setup(b) {
    const require = createRequire(import.meta.url);
    const { loadProtosWithOptionsSync } = createRequire(require.resolve('@grpc/proto-loader'))('./util');
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const call = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, (\{[^}]*\})\)/;
      const options = source.match(call)?.[1];
      if (!options) throw new Error(`bundle: etcd3's ${args.path} no longer loads its protocol as this plugin knows`);
      const root = loadProtosWithOptionsSync(require.resolve('etcd3/proto/rpc.proto'), { keepCase: true });
      const parsed = JSON.stringify(root.toJSON());
      return { contents: source.replace(call, `(0, proto_loader_1.fromJSON)(${parsed}, ${options})`), loader: 'js' };
    });
  },
};

/**
 * The build's id, compiled into the bundle, the snapshot and (scripts/build-native.sh reads
 * dist/build-id) the executable: a daemon's warm worker declines a launcher of another build, so
 * after an upgrade old code never runs a new launcher's commands. A hash of what the code is made
 * from (the sources and the locked dependencies): the same code rebuilt keeps its id.
 */
function buildId() {
  const hash = createHash('sha256');
  const add = (file) => hash.update(file).update('\0').update(readFileSync(file)).update('\0');
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .forEach((e) => (e.isDirectory() ? walk(join(dir, e.name)) : add(join(dir, e.name))));
  walk('src');
  ['package-lock.json', 'scripts/bundle.mjs'].forEach(add);
  return hash.digest('hex').slice(0, 16);
}
const BUILD_ID = buildId();

// Chunk names carry content hashes: without this, every build would leave the last one's chunks.
rmSync('dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: { pipewright: 'src/cli/bin.ts', pipework: 'src/cli/pipework-bin.ts' },
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL,
  plugins: [etcd3Protocol],
  define: { PIPEWRIGHT_BUILD_ID: JSON.stringify(BUILD_ID) },
  // Bundled CommonJS code may call require(): give each module one.
  banner: {
    js: "import { createRequire as __pwCreateRequire } from 'node:module'; const require = __pwCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

/**
 * In a snapshot, the require() of the snapshot's own script knows only Node's built-in modules:
 * packages outside the bundle are required through the one made when the snapshot starts.
 */
// better-sqlite3's JavaScript goes into the snapshot (resolving its dozen files costs ~10 ms per
// start); its addon is loaded by path at run time (src/db/store.ts).
const OUTSIDE_THE_SNAPSHOT = EXTERNAL.filter((p) => p !== 'better-sqlite3');

const outsideTheSnapshot = {
  name: 'outside-the-snapshot',
  setup(b) {
    const filter = new RegExp(`^(${OUTSIDE_THE_SNAPSHOT.join('|')}|bindings)$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'outside' }));
    b.onLoad({ filter: /.*/, namespace: 'outside' }, (args) => ({
      contents: `module.exports = globalThis.__pwRequire(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

/**
 * etcd3 with gRPC and protobufjs (1.2 MB) stays out of the snapshot too: a command on a SQLite
 * store would deserialize it at every start and never use it. Bundled apart, as one file the
 * snapshot requires when an etcd store is opened (dist/snapshot/etcd3.cjs).
 */
const ETCD3_FILE = 'etcd3.cjs';
const etcd3Apart = {
  name: 'etcd3-apart',
  setup(b) {
    b.onResolve({ filter: /^etcd3$/ }, () => ({ path: 'etcd3', namespace: 'etcd3-apart' }));
    b.onLoad({ filter: /.*/, namespace: 'etcd3-apart' }, () => ({
      // Next to the bundle (argv[1], dist/bundle/pipewright.mjs), with its code cache (src/cli/code-cache.ts).
      contents: `module.exports = globalThis.__pwRequireApart(${JSON.stringify(`../snapshot/${ETCD3_FILE}`)});`,
      loader: 'js',
    }));
  },
};

rmSync('dist/snapshot', { recursive: true, force: true });
/** The snapshot's script and etcd3 apart from it: CommonJS files for Node in dist/snapshot. */
const snapshotFile = {
  outdir: 'dist/snapshot',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
};
await build({
  ...snapshotFile,
  entryPoints: { etcd3: 'etcd3' },
  plugins: [etcd3Protocol],
  logLevel: 'error',
});
const cached = await buildCodeCache();
if (!cached.ok)
  console.error(
    `bundle: no code cache for ${ETCD3_FILE} (an etcd store then compiles it at each start)\n${cached.why}`,
  );
await build({
  ...snapshotFile,
  entryPoints: { pipewright: 'src/cli/snapshot.ts' },
  plugins: [outsideTheSnapshot, etcd3Apart],
  // The script's source stays in the snapshot's heap: without blanks and with shorter syntax (names
  // kept, so stack traces still name functions) it is 30 % smaller, ~2 ms less to deserialize.
  minifyWhitespace: true,
  minifySyntax: true,
  // Code that finds files next to itself asks import.meta.url or .filename: in the snapshot, the
  // bundle's, set at start.
  define: {
    'import.meta.url': 'globalThis.__pwEntryUrl',
    'import.meta.filename': 'globalThis.__pwEntry',
    PIPEWRIGHT_BUILD_ID: JSON.stringify(BUILD_ID),
  },
  logLevel: 'error',
});
const made = await buildSnapshot();
if (!made.ok)
  console.error(
    `bundle: building the startup snapshot failed; the executable will run the bundle instead\n${made.why}`,
  );
writeFileSync('dist/build-id', `${BUILD_ID}\n`);
