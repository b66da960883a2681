/**
 * The mount helper (native/pipewright-mount.c) on its own: an exact argument list (an unknown word
 * is a usage error, never a read-write mount), a numeric pid, and mounts that carry nosuid and
 * nodev into the target's mount namespace (a process in its own namespace stands in for a container).
 */
import t from 'tap';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot, ROOT_REASON } from '../helpers/host.js';
import { pidStartTime } from '../../src/util/process.js';

const HELPER = fileURLToPath(new URL('../../dist/pipewright-mount', import.meta.url));
const helper = (...args: string[]) => execa(HELPER, args, { reject: false });

t.test('the argument list is exact', async (t) => {
  for (const args of [
    ['mount', '1@5', '/a', '/b', '-', 'readonly'],
    ['mount', '1@5', '/a', '/b', '-', 'RO'],
    ['mount', '1@5', '/a', '/b', '-', 'ro', 'extra'],
    ['mount', '1@5', '/a', '/b', 'ro'],
    ['mount', '1@5', '/a', '/b', '1:x'],
    ['mount', '1', '/a', '/b', '-'],
    ['prepare', '1@5', '/x', 'mkdir', 'extra'],
    ['prepare', '1', '/x'],
    ['prepare', '1@', '/x'],
    ['prepare', '1@5x', '/x'],
    ['prepare', 'abc@5', '/x'],
    ['prepare', '-1@5', '/x'],
    ['prepare', '1@5', 'relative'],
    ['prepare', '1@5', ''],
    ['unmount', '1@5'],
    ['remount', '1@5', '/x'],
    ['copyup', '1@5', '/x'],
    ['copyup', '1@5', '/x', 'relative'],
    ['copyup', '1@5', '/x', '/y', 'extra'],
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
  const pid = `${guest.pid}@${pidStartTime(guest.pid!)}`;
  const target = `/tmp/pipewright-helper-target-${guest.pid}`;
  const prep = await helper('prepare', pid, target, 'mkdir');
  t.equal(prep.exitCode, 0, prep.stderr);
  const m = await helper('mount', pid, src, prep.stdout.trim(), '-', 'ro');
  t.equal(m.exitCode, 0, m.stderr);
  const { dev, ino } = statSync(src);
  t.equal(m.stdout.trim(), `${dev}:${ino}`, "it prints the source's identity");
  const line = readFileSync(`/proc/${guest.pid}/mountinfo`, 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === prep.stdout.trim());
  t.ok(line, 'mounted in the guest');
  const opts = (line ?? '').split(' ')[5].split(',');
  for (const o of ['ro', 'nosuid', 'nodev']) t.ok(opts.includes(o), o);
  t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(target), "the host's namespace does not see it");
  t.equal((await helper('unmount', pid, prep.stdout.trim())).exitCode, 0);
  rmSync(target, { recursive: true, force: true });
});

t.test(
  'a pid whose start time is not the one the caller saw is refused, nothing done',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const guest = execa('unshare', ['--mount', '--propagation', 'private', 'sleep', '60'], { reject: false });
    t.teardown(() => void guest.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 200));
    const target = `/tmp/pipewright-helper-reused-${guest.pid}`;
    const r = await helper('prepare', `${guest.pid}@${Number(pidStartTime(guest.pid!)) + 1}`, target, 'mkdir');
    t.equal(r.exitCode, 1);
    t.match(r.stderr, /^pipewright-mount: pid \d+ is no longer the process started at \d+; nothing done$/);
    t.notOk(existsSync(target), 'nothing was made');
  },
);
