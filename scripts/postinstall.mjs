// Run by npm after installing the package (`npm install -g pipewright-<v>.tgz`): the tarball's
// native pieces and CLI snapshot were built on one host, for its libc, Node and CPU. Where they do
// not fit this host they are built again here: the C programs and addon with
// scripts/build-native.sh (a C compiler and Node's headers), the snapshot with this Node.
// In a source checkout (no dist/ yet: `npm ci`) there is nothing to check; `npm run build` builds.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { buildCodeCache, buildSnapshot, snapshotFlags } from './build-snapshot.mjs';

const run = (cmd, args, env = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
const say = (s) => console.log(`pipewright postinstall: ${s}`);

/** The C programs and the addon start on this host (its libc, its CPU architecture). */
function nativeRuns() {
  const key = run('dist/cpu-key', []);
  if (key.status !== 0) return false;
  try {
    createRequire(import.meta.url)('../dist/syscalls.node');
    return true;
  } catch {
    return false;
  }
}

const KEY = 'dist/pipewright.blob.cpu';
const VERSION = JSON.parse(readFileSync('package.json', 'utf8')).version;
const BUNDLED = existsSync('dist/bundle/pipewright.mjs');
/** The V8 flags the snapshot is built and started with (src/util/snapshot-flags.ts), which the launcher passes. */
const FLAGS = BUNDLED ? await snapshotFlags().catch(incomplete) : [];

function incomplete(err) {
  console.error(`pipewright postinstall: the package is incomplete (${err.message}); reinstall it`);
  process.exit(1);
}

/** The snapshot was built on a CPU like this one, and this Node loads it and runs the CLI. */
function snapshotFits() {
  if (!existsSync('dist/pipewright.blob')) return false;
  const key = run('dist/cpu-key', []).stdout.trim();
  if (!existsSync(KEY) || readFileSync(KEY, 'utf8').trim() !== key) return false;
  const r = run(
    process.execPath,
    [...FLAGS, '--snapshot-blob', 'dist/pipewright.blob', 'dist/bundle/pipewright.mjs', '--version'],
    {
      PIPEWRIGHT_CLI_SOCKET: '',
    },
  );
  return r.status === 0 && r.stdout.trim() === VERSION;
}

function rebuildNative() {
  say('the shipped native pieces do not run here: building them (scripts/build-native.sh)');
  // build-native.sh writes this CPU's key beside the snapshot, as if it had just been built here:
  // keep the key of the CPU that did build it, for snapshotFits to judge.
  const key = existsSync(KEY) ? readFileSync(KEY) : undefined;
  const r = spawnSync('bash', ['scripts/build-native.sh'], { stdio: 'inherit' });
  if (key) writeFileSync(KEY, key);
  if (r.status !== 0 || !nativeRuns()) {
    console.error(
      'pipewright postinstall: building the native pieces failed; install gcc and libc6-dev, then reinstall',
    );
    process.exit(1);
  }
}

/** A snapshot for this Node and CPU; without one the executable runs the bundle (slower start). */
async function rebuildSnapshot() {
  say(`the shipped CLI snapshot does not fit this Node (${process.version}) or CPU: building it`);
  const made = await buildSnapshot();
  // etcd3's code cache (src/cli/code-cache.ts) is this Node's V8's too: made again, or an etcd
  // store compiles it at each start.
  await buildCodeCache();
  if (made.ok && snapshotFits()) return;
  rmSync('dist/pipewright.blob', { force: true });
  say('building the snapshot failed; pipewright runs without it (each command starts ~25 ms slower)');
}

if (BUNDLED) {
  if (!nativeRuns()) rebuildNative();
  if (!snapshotFits()) await rebuildSnapshot();
}
