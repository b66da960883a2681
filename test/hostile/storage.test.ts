/**
 * Hostile guests against mounts and volumes: a container that swaps a host path it can write for
 * a symlink to / before its restart, points its mount targets' symlinks at other mounts, plants
 * set-uid files in volumes, prepares sparse or too deep trees for copy-up, races `volume rm`, and
 * (root of its own user namespace) remounts a `:ro` mount read-write. Guests are processes in
 * their own mount namespace (`unshare -m`, a privileged container; `unshare -Urm`, root of its
 * own user namespace); one case runs against Docker and a busybox container.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLI,
  cli,
  dockerUp,
  isRoot,
  must,
  ROOT_REASON,
  sh,
  stateDir,
  TEST_IMAGE,
  uniq,
  waitStopped,
} from '../helpers/host.js';
import { closeContext, openContext } from '../../src/ops/context.js';
import { resolveGuest } from '../../src/runtime/guest.js';
import { restoreMounts } from '../../src/storage/mount.js';
import { reconcileContainer } from '../../src/lifecycle/reconcile.js';
import { Store } from '../../src/db/store.js';

type T = Test;
const SKIP = !isRoot && ROOT_REASON;

/** A guest process in a mount namespace of its own; `userns`: root of its own user namespace too. */
async function guest(t: T, userns = false): Promise<number> {
  const flags = userns ? ['-Urm'] : ['-m'];
  const p = execa('unshare', [...flags, '--propagation', 'private', 'sleep', '120'], { reject: false });
  t.teardown(() => void p.kill('SIGKILL'));
  for (let i = 0; i < 100; i++) {
    const ns = await sh('readlink', [`/proc/${p.pid}/ns/mnt`]);
    if (
      ns.stdout.trim() !== (await sh('readlink', ['/proc/self/ns/mnt'])).stdout.trim() &&
      (await sh('cat', [`/proc/${p.pid}/comm`])).stdout.trim() === 'sleep'
    )
      break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return p.pid!;
}

/** A command run inside the guest (as host root in its mount namespace, or as its own root). */
const inGuest = (pid: number, cmd: string, asGuestRoot = false) =>
  execa(
    'nsenter',
    ['-t', String(pid), '-m', ...(asGuestRoot ? ['-U', '--preserve-credentials'] : []), 'sh', '-c', cmd],
    { reject: false },
  );

/** What the guest has mounted at `target` (its mountinfo lines). */
async function mountsAt(pid: number, target: string): Promise<string[]> {
  const esc = target.replace(/ /g, '\\040');
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === esc);
}

/** watch's restore for a pid guest: the number restored, or the one-line refusal. */
async function restore(dir: string, pid: number): Promise<number | string> {
  const ctx = await openContext({ stateDir: dir });
  try {
    return await restoreMounts(ctx, await resolveGuest(`pid:${pid}`, ctx.docker));
  } catch (err) {
    return (err as Error).message;
  } finally {
    await closeContext(ctx);
  }
}

const identity = (path: string) => {
  const s = statSync(path);
  return `${s.dev}:${s.ino}`;
};

/**
 * Host dirs outer/inner, and `at`: a dir for targets (the pid guests share the host's files, so
 * their targets go in a dir of the test's own).
 */
function hostDirs(t: T): { outer: string; inner: string; at: string; decoy: string } {
  const base = mkdtempSync(join(tmpdir(), 'pipewright-hostile-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const outer = join(base, 'outer');
  mkdirSync(join(outer, 'inner'), { recursive: true });
  mkdirSync(join(base, 'at'));
  mkdirSync(join(base, 'decoy'));
  writeFileSync(join(outer, 'inner', 'mine'), 'inner');
  return { outer, inner: join(outer, 'inner'), at: join(base, 'at'), decoy: join(base, 'decoy') };
}

t.test(
  '#2: a bind source swapped for a symlink to / (or another dir) before a restore is refused in one line',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const pid = await guest(t);
    const { outer, inner, at, decoy } = hostDirs(t);
    for (const spec of [`${outer}:${at}/outer`, `${inner}:${at}/inner`])
      t.equal((await cli(dir, ['mount', `pid:${pid}`, spec])).exitCode, 0, spec);
    const ids = Store.open(dir).db.prepare('SELECT target, source_id FROM mounts ORDER BY id').all() as {
      target: string;
      source_id: string;
    }[];
    t.same(
      ids.map((r) => r.source_id),
      [identity(outer), identity(inner)],
      'the first mount recorded each source as <dev>:<ino>',
    );
    // The guest (it can write /outer) puts a symlink to / where inner was, and "restarts".
    const cmd = `umount ${at}/inner && rm -rf ${at}/outer/inner && ln -s / ${at}/outer/inner && umount ${at}/outer`;
    t.equal((await inGuest(pid, cmd)).exitCode, 0);
    const refused = await restore(dir, pid);
    t.type(refused, 'string', 'the restore reports a refusal');
    t.match(refused, /\/inner: .*host path .*inner now holds a symlink; refusing to mount it/);
    t.notMatch(String(refused), /\n/, 'one line');
    t.equal((await mountsAt(pid, `${at}/outer`)).length, 1, 'the unchanged source is restored');
    t.equal((await mountsAt(pid, `${at}/inner`)).length, 0, 'nothing is mounted at inner');
    const seen = (await inGuest(pid, `stat -c %d:%i ${at}/inner`)).stdout.trim();
    t.not(seen, identity('/'), "/inner is not the host's root");

    // Another directory (not a link) put in its place: not the object first mounted either. (It
    // was made while the first lived: a directory made after may reuse the freed inode number,
    // and is then a new directory at the very path the operator chose, which is not refused.)
    rmSync(inner);
    renameSync(decoy, inner);
    const other = await restore(dir, pid);
    t.match(other, /is no longer what was first mounted \(\d+:\d+, now \d+:\d+\); refusing to mount it/);
    t.equal((await mountsAt(pid, `${at}/inner`)).length, 0);
  },
);

t.test(
  '#2: an older record (no identity) gets the no-symlink open and the host-path policy',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const pid = await guest(t);
    const { inner, at } = hostDirs(t);
    t.equal((await cli(dir, ['mount', `pid:${pid}`, `${inner}:${at}/inner`])).exitCode, 0);
    const store = Store.open(dir);
    store.db.prepare('UPDATE mounts SET source_id = NULL').run();
    await must('nsenter', ['-t', String(pid), '-m', 'umount', `${at}/inner`]);
    rmSync(inner, { recursive: true });
    symlinkSync('/', inner);
    t.match(await restore(dir, pid), /inner now holds a symlink; refusing/);
    store.db.prepare('UPDATE mounts SET host_path = ?').run('/proc/sys');
    t.match(
      await restore(dir, pid),
      /refusing to mount \/proc\/sys: it exposes the host/,
      'the policy is applied again',
    );
    t.equal((await mountsAt(pid, `${at}/inner`)).length, 0, 'nothing mounted');
  },
);

const docker = isRoot && (await dockerUp());
t.test(
  '#2 with Docker: a container swapping /outer/inner for a symlink to / gets no host root after a restart',
  { skip: !docker && 'needs root and Docker' },
  async (t) => {
    const dir = stateDir(t);
    const { outer, inner } = hostDirs(t);
    const name = uniq('hs');
    await must('docker', ['run', '-d', '--net=none', '--name', name, TEST_IMAGE, 'sleep', '3600']);
    t.teardown(() => sh('docker', ['rm', '-f', name]));
    for (const spec of [`${outer}:/outer`, `${inner}:/inner`])
      t.equal((await cli(dir, ['mount', name, spec])).exitCode, 0, spec);
    const ex = (cmd: string) => execa('docker', ['exec', name, 'sh', '-c', cmd], { reject: false });
    t.equal((await ex('rm -rf /outer/inner && ln -s / /outer/inner')).exitCode, 0);
    await must('docker', ['restart', '-t', '0', name]);
    const id = (await must('docker', ['inspect', '-f', '{{.Id}}', name])).trim();
    const ctx = await openContext({ stateDir: dir });
    const report = await reconcileContainer(ctx, id).finally(() => closeContext(ctx));
    t.equal(report.action, 'failed', 'watch reports the refusal');
    t.match(report.detail, /restored 1 mount\(s\) into .*, not \/inner: .*now holds a symlink; refusing to mount it/);
    t.notMatch(report.detail, /\n/);
    const seen = (await ex('stat -c %d:%i /inner')).stdout.trim();
    t.not(seen, identity('/'), "/inner in the container is not the host's root");
    t.equal((await ex('ls /outer')).exitCode, 0, '/outer is back');
  },
);

t.test(
  '#11: targets recorded resolved; restores do not stack; unmount follows no symlink',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const pid = await guest(t);
    const { inner, at } = hostDirs(t);
    const [d, other, data, space] = ['mnt/d', 'mnt/other', 'data', 'sp ace'].map((p) => join(at, p));
    await must('nsenter', ['-t', String(pid), '-m', 'sh', '-c', `mkdir -p ${d} ${other} && ln -s ${d} ${data}`]);
    t.equal((await cli(dir, ['mount', `pid:${pid}`, `${inner}:${data}`])).exitCode, 0);
    t.equal((await cli(dir, ['mount', `pid:${pid}`, `${inner}:${space}`])).exitCode, 0, 'a target with a space');
    const targets = (
      Store.open(dir).db.prepare('SELECT target FROM mounts ORDER BY id').all() as { target: string }[]
    ).map((r) => r.target);
    t.same(targets, [d, space], 'recorded where it was mounted');
    for (let i = 0; i < 2; i++) t.equal(await restore(dir, pid), 0, `restore ${i + 1}: nothing to do`);
    t.equal((await mountsAt(pid, d)).length, 1, 'one mount at mnt/d');
    t.equal((await mountsAt(pid, space)).length, 1, 'one mount at "sp ace"');

    // The guest takes its mount away and leaves a symlink to another mount of its own in its place.
    await must('nsenter', [
      '-t',
      String(pid),
      '-m',
      'sh',
      '-c',
      `mount -t tmpfs x ${other} && umount ${d} && rmdir ${d} && ln -s ${other} ${d}`,
    ]);
    const un = await cli(dir, ['unmount', `pid:${pid}`, d]);
    t.not(un.exitCode, 0, 'the unmount does not follow the symlink');
    t.equal((await mountsAt(pid, other)).length, 1, "the guest's other mount is untouched");
    await must('nsenter', ['-t', String(pid), '-m', 'sh', '-c', `rm ${d} && mkdir ${d}`]);
    t.equal(await restore(dir, pid), 1);
    const viaLink = await cli(dir, ['unmount', `pid:${pid}`, data]);
    t.equal(viaLink.exitCode, 0, `unmount by the path as mounted, through the container's symlink: ${viaLink.stderr}`);
    t.equal((await mountsAt(pid, d)).length, 0, 'unmount removed it');
  },
);

t.test(
  '#10: a state dir others may enter is made 0700; volumes are root-only, backing mounts nosuid,nodev',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    chmodSync(dir, 0o755);
    t.equal((await cli(dir, ['volume', 'create', 'vv'])).exitCode, 0);
    t.equal(statSync(dir).mode & 0o777, 0o700, 'a 0755 state dir of ours is made 0700');
    t.equal((await cli(dir, ['volume', 'create', 'qq', '--size', '8M'])).exitCode, 0);
    const data = join(dir, 'volumes', 'qq', '_data');
    t.teardown(() => sh('umount', [data]));
    for (const d of ['volumes', 'volumes/vv', 'volumes/qq'])
      t.equal(statSync(join(dir, d)).mode & 0o777, 0o700, `${d} is 0700`);
    t.not(
      (
        await execa('runuser', ['-u', 'nobody', '--', 'test', '-x', join(dir, 'volumes', 'vv', '_data')], {
          reject: false,
        })
      ).exitCode,
      0,
      'nobody cannot reach a volume',
    );
    const line = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === data);
    for (const o of ['nosuid', 'nodev'])
      t.ok(line?.split(' ')[5].split(',').includes(o), `the --size backing mount is ${o}`);
    // A set-uid root file a container planted: even with the dirs opened up, it runs as the caller.
    await must('cp', ['/usr/bin/id', join(data, 'id')]);
    chmodSync(join(data, 'id'), 0o4755);
    for (const d of ['', 'volumes', 'volumes/qq']) chmodSync(join(dir, d), 0o711);
    const id = await execa('runuser', ['-u', 'nobody', '--', join(data, 'id'), '-u'], { reject: false });
    t.equal(id.stdout.trim(), '65534', 'a planted set-uid root file does not make nobody root');
    chmodSync(dir, 0o700);

    // Others' write bits: refused in one line, nothing made, the mode left as it was.
    const shared = mkdtempSync(join(tmpdir(), 'pipewright-shared-'));
    t.teardown(() => rmSync(shared, { recursive: true, force: true }));
    chmodSync(shared, 0o1777);
    const r = await cli(shared, ['volume', 'create', 'vv']);
    t.equal(r.exitCode, 1);
    t.match(r.stderr, /^pipewright: state dir .* is writable by others \(mode 1777\)/);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notOk(existsSync(join(shared, 'volumes')), 'nothing made');
  },
);

t.test('#15: a mount during `volume rm` waits for it; no live mount loses its files', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const pid = await guest(t);
  t.equal((await cli(dir, ['volume', 'create', 'vv'])).exitCode, 0);
  writeFileSync(join(dir, 'volumes', 'vv', '_data', 'old'), 'old');
  const rm = execa(CLI, ['volume', 'rm', 'vv'], {
    reject: false,
    env: { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_FAULT: 'volume rm vv: unmount:stop' },
  });
  t.teardown(() => void rm.kill('SIGKILL'));
  await waitStopped(rm.pid!);
  const { at } = hostDirs(t);
  const mount = cli(dir, ['mount', `pid:${pid}`, `vv:${at}`]);
  // Unserialized, the mount lands in well under this (about 0.1 to 0.8 s on the test VM).
  const landed = await Promise.race([mount.then(() => true), new Promise((r) => setTimeout(() => r(false), 2500))]);
  t.notOk(landed, 'the mount waits while rm holds the volumes lock');
  process.kill(rm.pid!, 'SIGCONT');
  const [r, m] = await Promise.all([rm, mount]);
  t.equal(r.exitCode, 0, `rm finished first: ${r.stderr}`);
  t.equal(m.exitCode, 0, `the mount then made the volume anew: ${m.stderr}`);
  t.equal((await inGuest(pid, `echo live > ${at}/new`)).exitCode, 0);
  t.equal(
    readFileSync(join(dir, 'volumes', 'vv', '_data', 'new'), 'utf8'),
    'live\n',
    "the guest's files are the volume's, on the host",
  );
  t.match((await cli(dir, ['volume', 'rm', 'vv'])).stderr, /in use by/, 'and it is in use');
  await cli(dir, ['unmount', `pid:${pid}`, at]);
});

t.test('#19: copy-up keeps holes; a copy-up that fails leaves the volume empty', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const pid = await guest(t);
  const src = mkdtempSync(join(tmpdir(), 'pipewright-sparse-'));
  t.teardown(() => rmSync(src, { recursive: true, force: true }));
  await must('truncate', ['-s', '64G', join(src, 'big')]);
  writeFileSync(join(src, 'small'), 'x'.repeat(10000));
  await must('sh', [
    '-c',
    `printf tail | dd of=${join(src, 'big')} bs=1 seek=$((64*1024*1024*1024-4)) conv=notrunc 2>/dev/null`,
  ]);
  const r = await cli(dir, ['mount', `pid:${pid}`, `sparse:${src}`]);
  t.equal(r.exitCode, 0, r.stderr);
  const data = join(dir, 'volumes', 'sparse', '_data');
  t.equal(statSync(join(data, 'big')).size, 64 * 2 ** 30, 'the file keeps its size');
  const du = Number((await must('du', ['-sk', data])).split('\t')[0]);
  t.ok(du < 1024, `du of the volume stays small (${du} KiB)`);
  t.equal(readFileSync(join(data, 'small'), 'utf8').length, 10000);

  // A tree deeper than the helper copies: the copy fails midway, and what it wrote is removed.
  const deep = mkdtempSync(join(tmpdir(), 'pipewright-deep-'));
  t.teardown(() => rmSync(deep, { recursive: true, force: true }));
  writeFileSync(join(deep, 'first'), 'x');
  mkdirSync(join(deep, ...Array.from({ length: 210 }, () => 'd')), { recursive: true });
  const bad = await cli(dir, ['mount', `pid:${pid}`, `deepvol:${deep}`]);
  t.equal(bad.exitCode, 1);
  t.match(bad.stderr, /deeper than 200 levels/);
  const left = join(dir, 'volumes', 'deepvol', '_data');
  t.same(existsSync(left) ? (await must('ls', ['-A', left])).trim() : '', '', 'the partial copy was removed');
});

t.test(
  '#20: a :ro mount into a guest that owns its mount namespace cannot be remounted rw there',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const pid = await guest(t, true);
    const src = mkdtempSync(join(tmpdir(), 'pipewright-ro-'));
    t.teardown(() => rmSync(src, { recursive: true, force: true }));
    const { at } = hostDirs(t);
    const ro = join(at, 'ro');
    const m = await cli(dir, ['mount', `pid:${pid}`, `${src}:${ro}:ro`]);
    t.equal(m.exitCode, 0, m.stderr);
    const remount = await inGuest(pid, `mount -o remount,bind,rw ${ro}`, true);
    t.not(remount.exitCode, 0, 'remount,rw is refused');
    t.match(remount.stderr, /permission denied/i, 'EPERM: the read-only flag is locked');
    t.not((await inGuest(pid, `touch ${ro}/x`, true)).exitCode, 0);
    t.notOk(existsSync(join(src, 'x')), 'the host directory is untouched');
    for (const o of ['ro', 'nosuid', 'nodev'])
      t.ok((await mountsAt(pid, ro))[0]?.split(' ')[5].split(',').includes(o), o);
    t.equal((await cli(dir, ['unmount', `pid:${pid}`, ro])).exitCode, 0, 'pipewright can still take it out');
    t.equal((await mountsAt(pid, ro)).length, 0);
  },
);
