/**
 * npm's postinstall (scripts/postinstall.mjs) on an installed package whose shipped pieces do not
 * fit this host: a snapshot from another CPU is built again, native pieces that do not run are
 * built again, and what fits is left alone. A copy of the package's shipped files in a temp dir.
 */
import t from 'tap';
import { execa } from 'execa';
import { cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syscalls } from '../../src/util/syscalls.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SHIPPED = [
  'package.json',
  'native',
  'scripts/postinstall.mjs',
  'scripts/build-snapshot.mjs',
  'scripts/build-native.sh',
  ...[
    'bin',
    'bundle',
    'snapshot',
    'pipewright.blob',
    'pipewright.blob.cpu',
    'cpu-key',
    'syscalls.node',
    'build-id',
    'util/snapshot-flags.js',
  ].map((f) => `dist/${f}`),
];

function installed(dir: string): string {
  for (const part of SHIPPED) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  return dir;
}

const postinstall = (dir: string) => execa('node', ['scripts/postinstall.mjs'], { cwd: dir, reject: false });
const version = (dir: string) =>
  execa(join(dir, 'dist/bin/pipewright'), ['--version'], { reject: false, env: { PIPEWRIGHT_CLI_SOCKET: '' } });
const key = (dir: string) => readFileSync(join(dir, 'dist/pipewright.blob.cpu'), 'utf8').trim();
const modified = (dir: string, file: string) => statSync(join(dir, file)).mtimeMs;

t.test('pieces that fit are left alone', async (t) => {
  const dir = installed(t.testdir({}));
  const blob = modified(dir, 'dist/pipewright.blob');
  const r = await postinstall(dir);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(r.stdout, '', 'nothing to say');
  t.equal(modified(dir, 'dist/pipewright.blob'), blob, 'the snapshot was not rebuilt');
});

t.test("a snapshot from another CPU is built again for this one's", async (t) => {
  const dir = installed(t.testdir({}));
  writeFileSync(join(dir, 'dist/pipewright.blob.cpu'), '0123456789abcdef\n');
  const blob = modified(dir, 'dist/pipewright.blob');
  const r = await postinstall(dir);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /snapshot does not fit/);
  t.equal(key(dir), syscalls().cpuKey(), "the snapshot carries this CPU's key");
  t.not(modified(dir, 'dist/pipewright.blob'), blob, 'the snapshot was rebuilt');
  const v = await version(dir);
  t.equal(v.exitCode, 0, v.stderr);
});

t.test('native pieces that do not run are built again, and the snapshot judged by its own key', async (t) => {
  const dir = installed(t.testdir({}));
  writeFileSync(join(dir, 'dist/cpu-key'), 'not a program');
  writeFileSync(join(dir, 'dist/syscalls.node'), 'not an addon');
  // Packed on another CPU: rebuilding the native pieces must not pass the snapshot off as this CPU's.
  writeFileSync(join(dir, 'dist/pipewright.blob.cpu'), '0123456789abcdef\n');
  const r = await postinstall(dir);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /native pieces do not run here/);
  t.equal((await execa(join(dir, 'dist/cpu-key'))).stdout.trim(), syscalls().cpuKey(), 'cpu-key runs again');
  t.match(r.stdout, /snapshot does not fit/, 'the snapshot of another CPU is rebuilt too');
  t.equal(key(dir), syscalls().cpuKey());
  t.equal((await version(dir)).exitCode, 0);
});
