/**
 * The mount helper (native/pipewright-mount.c) on its own: an exact argument list (an unknown word
 * is a usage error, never a read-write mount), a numeric pid, and mounts that carry nosuid and
 * nodev into the target's mount namespace (a process in its own namespace stands in for a container).
 */
import t from 'tap';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot, ROOT_REASON } from '../helpers/host.js';

const HELPER = fileURLToPath(new URL('../../dist/pipewright-mount', import.meta.url));
const helper = (...args: string[]) => execa(HELPER, args, { reject: false });

t.test('the argument list is exact', async (t) => {
  for (const args of [
    ['mount', '1', '/a', '/b', 'readonly'],
    ['mount', '1', '/a', '/b', 'RO'],
    ['mount', '1', '/a', '/b', 'ro', 'extra'],
    ['prepare', '1', '/x', 'mkdir', 'extra'],
    ['prepare', 'abc', '/x'],
    ['prepare', '-1', '/x'],
    ['prepare', '1', 'relative'],
    ['prepare', '1', ''],
    ['unmount', '1'],
    ['remount', '1', '/x'],
    ['copyup', '1', '/x'],
    ['copyup', '1', '/x', 'relative'],
    ['copyup', '1', '/x', '/y', 'extra'],
  ]) {
    const r = await helper(...args);
    t.equal(r.exitCode, 2, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('a mount carries nosuid and nodev, read-only when asked', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const src = mkdtempSync(join(tmpdir(), 'pipewright-helper-'));
  t.teardown(() => rmSync(src, { recursive: true, force: true }));
  writeFileSync(join(src, 'f'), 'x');
  const guest = execa('unshare', ['--mount', '--propagation', 'private', 'sleep', '60'], { reject: false });
  t.teardown(() => void guest.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 200));
  const pid = String(guest.pid);
  const target = `/tmp/pipewright-helper-target-${pid}`;
  const prep = await helper('prepare', pid, target, 'mkdir');
  t.equal(prep.exitCode, 0, prep.stderr);
  const m = await helper('mount', pid, src, prep.stdout.trim(), 'ro');
  t.equal(m.exitCode, 0, m.stderr);
  const line = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === prep.stdout.trim());
  t.ok(line, 'mounted in the guest');
  const opts = (line ?? '').split(' ')[5].split(',');
  for (const o of ['ro', 'nosuid', 'nodev']) t.ok(opts.includes(o), o);
  t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(target), "the host's namespace does not see it");
  t.equal((await helper('unmount', pid, prep.stdout.trim())).exitCode, 0);
  rmSync(target, { recursive: true, force: true });
});
