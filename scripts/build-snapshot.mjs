// Builds the CLI's V8 startup snapshot (dist/pipewright.blob) from dist/snapshot/pipewright.cjs,
// and V8's code cache for etcd3 (dist/snapshot/etcd3.cjs.cache, src/cli/code-cache.ts), both
// under the V8 flags the launcher starts them with (src/util/snapshot-flags.ts): Node and V8
// accept a snapshot or a code cache only under the flags it was made with. The one place that
// makes them, for `npm run build` (scripts/bundle.mjs), postinstall's rebuild for another Node or
// CPU (scripts/postinstall.mjs) and a test VM's own CPU (test/vm/stage2-init).
//
//   node scripts/build-snapshot.mjs [--no-code-cache]     (from the package's root)
//
// Where dist/cpu-key is built, it also writes the CPU the snapshot was made on beside it
// (dist/pipewright.blob.cpu, native/cpu-key.h): the launcher runs the bundle on another.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const FLAGS_MODULE = 'dist/util/snapshot-flags.js';
const BLOB = 'dist/pipewright.blob';
const ETCD3 = 'dist/snapshot/etcd3.cjs';

/** The flags, from tsc's output; an error naming what is missing when it is not there. */
export async function snapshotFlags() {
  if (!existsSync(FLAGS_MODULE)) throw new Error(`${FLAGS_MODULE} is missing: build (npm run build) or reinstall`);
  return (await import(pathToFileURL(FLAGS_MODULE).href)).SNAPSHOT_FLAGS;
}

const node = (args) => spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 300_000 });
/** What a failed run of node said, or how it ended. */
const why = (made) => made.stderr || made.error?.message || `node exited ${made.status}`;

/** The snapshot; on failure none is left (the launcher then runs the bundle) and Node's stderr is returned. */
export async function buildSnapshot() {
  const made = node([
    ...(await snapshotFlags()),
    '--snapshot-blob',
    BLOB,
    '--build-snapshot',
    'dist/snapshot/pipewright.cjs',
  ]);
  if (made.status !== 0) {
    rmSync(BLOB, { force: true });
    return { ok: false, why: why(made) };
  }
  if (existsSync('dist/cpu-key')) {
    const key = spawnSync('dist/cpu-key', [], { encoding: 'utf8' });
    if (key.status === 0) writeFileSync(`${BLOB}.cpu`, key.stdout);
  }
  return { ok: true };
}

/** etcd3's code cache; without one an etcd store compiles etcd3 at each start. */
export async function buildCodeCache() {
  const made = node([
    ...(await snapshotFlags()),
    '--input-type=module',
    '-e',
    `(await import('./dist/cli/code-cache.js')).writeCodeCache(${JSON.stringify(ETCD3)})`,
  ]);
  return made.status === 0 ? { ok: true } : { ok: false, why: why(made) };
}

// Run as a script (not imported, as build-native.sh and bundle.mjs do).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const built = await buildSnapshot();
  if (!built.ok) console.error(`build-snapshot: the startup snapshot: ${built.why.trim()}`);
  const cached = process.argv.includes('--no-code-cache') ? { ok: true } : await buildCodeCache();
  if (!cached.ok) console.error(`build-snapshot: etcd3's code cache: ${cached.why.trim()}`);
  process.exit(built.ok && cached.ok ? 0 : 1);
}
