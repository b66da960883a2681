/**
 * The startup snapshot is used only on a CPU like the one that built it: elsewhere (a checkout
 * shared with a VM whose CPU model differs, a copy on another machine) V8 refuses it and Node
 * exits, so the executable runs the bundle instead. A copy of dist's launcher, bundle and snapshot
 * in a temporary dir, with the key beside the snapshot changed.
 */
import t from 'tap';
import { execa } from 'execa';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syscalls } from '../../src/util/syscalls.js';
import { SNAPSHOT_FLAGS } from '../../src/util/snapshot-flags.js';

const DIST = fileURLToPath(new URL('../../dist', import.meta.url));

function copyOfDist(root: string): string {
  const dist = join(root, 'dist');
  mkdirSync(dist);
  for (const part of ['bin', 'bundle', 'pipewright.blob', 'pipewright.blob.cpu'])
    cpSync(join(DIST, part), join(dist, part), { recursive: true });
  return dist;
}

const version = (dist: string) =>
  execa(join(dist, 'bin/pipewright'), ['--version'], { reject: false, env: { PIPEWRIGHT_CLI_SOCKET: '' } });
const expected = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

t.test('the build wrote the key of the CPU it built the snapshot on', async (t) => {
  t.equal(readFileSync(join(DIST, 'pipewright.blob.cpu'), 'utf8').trim(), syscalls().cpuKey());
});

t.test('a snapshot from another CPU is not loaded: the bundle runs', async (t) => {
  const dist = copyOfDist(t.testdir({}));
  // A snapshot V8 would refuse: loaded, Node would exit 14 with "Failed to load the startup snapshot".
  writeFileSync(join(dist, 'pipewright.blob'), Buffer.alloc(4096, 7));
  const loaded = await execa(
    'node',
    [
      ...SNAPSHOT_FLAGS,
      '--snapshot-blob',
      join(dist, 'pipewright.blob'),
      join(dist, 'bundle/pipewright.mjs'),
      '--version',
    ],
    { reject: false },
  );
  t.not(loaded.exitCode, 0, 'node itself fails on that snapshot');
  writeFileSync(join(dist, 'pipewright.blob.cpu'), '0123456789abcdef\n');
  const r = await version(dist);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(r.stdout.trim(), expected);
  writeFileSync(join(dist, 'pipewright.blob.cpu'), `${syscalls().cpuKey()}\n`);
  t.not((await version(dist)).exitCode, 0, 'with the key of this CPU the snapshot is loaded (and this one fails)');
});
