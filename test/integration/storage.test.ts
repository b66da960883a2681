/**
 * Volumes and mounts against a real dockerd and busybox containers: files cross both ways, :ro is
 * read-only inside, unmount takes it away, in-use volumes are kept, prune takes only unused ones,
 * --size is a hard quota, tmpfs volumes are tmpfs, copy-up and :nocopy, refusals change nothing.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, cli, dockerUp, isRoot, must, sh, stateDir, TEST_IMAGE, uniq, waitStopped } from '../helpers/host.js';

const docker = isRoot && (await dockerUp());
const SKIP = !docker && 'needs root and a running Docker engine (scripts/test.sh starts one)';
type T = Test;

async function container(t: T): Promise<string> {
  const name = uniq('v');
  await must('docker', ['run', '-d', '--net=none', '--name', name, TEST_IMAGE, 'sleep', '3600']);
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  return name;
}
const inCtr = (name: string, ...cmd: string[]) => execa('docker', ['exec', name, ...cmd], { reject: false });

/** Backing mounts (tmpfs, loop images) go at the end even when the test fails; the state dir goes with stateDir(). */
function volumes(t: T, dir: string) {
  t.teardown(async () => {
    for (const v of JSON.parse((await cli(dir, ['volume', 'ls', '--json'])).stdout || '[]'))
      await sh('umount', [v.Mountpoint]);
  });
}

t.test('a named volume in a running container, both ways, ro, unmount, rm', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  volumes(t, dir);
  const ctr = await container(t);
  const r = await cli(dir, ['mount', ctr, 'data:/data', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const path = (await cli(dir, ['volume', 'path', 'data'])).stdout.trim();
  writeFileSync(join(path, 'from-host'), 'hello from the host\n');
  t.equal((await inCtr(ctr, 'cat', '/data/from-host')).stdout, 'hello from the host', 'host -> container');
  t.equal((await inCtr(ctr, 'sh', '-c', 'echo from the container > /data/from-ctr')).exitCode, 0);
  t.equal(readFileSync(join(path, 'from-ctr'), 'utf8'), 'from the container\n', 'container -> host');

  const inspect = JSON.parse((await cli(dir, ['volume', 'inspect', 'data'])).stdout)[0];
  t.match(inspect, { Name: 'data', Driver: 'local', Scope: 'local', Mountpoint: path, UsageData: { RefCount: 1 } });
  t.match(inspect.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.match((await cli(dir, ['volume', 'ls'])).stdout, new RegExp(`data\\s+${ctr}:/data`));
  const rm = await cli(dir, ['volume', 'rm', 'data']);
  t.equal(rm.exitCode, 1);
  t.match(rm.stderr, /in use by .*:\/data/);

  t.equal((await cli(dir, ['mount', ctr, 'data:/ro:ro'])).exitCode, 0);
  t.equal((await inCtr(ctr, 'cat', '/ro/from-host')).stdout, 'hello from the host');
  const write = await inCtr(ctr, 'sh', '-c', 'echo x > /ro/nope');
  t.not(write.exitCode, 0, ':ro is read-only inside');
  t.match(write.stderr, /Read-only file system/);

  for (const target of ['/data', '/ro']) t.equal((await cli(dir, ['unmount', ctr, target])).exitCode, 0);
  t.not((await inCtr(ctr, 'cat', '/data/from-host')).exitCode, 0, 'unmounted: gone from the container');
  t.equal((await cli(dir, ['volume', 'rm', 'data'])).exitCode, 0, 'rm works once unused');
  t.notOk(existsSync(path));
});

t.test('prune removes only unused volumes (and honours label filters)', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  volumes(t, dir);
  const ctr = await container(t);
  for (const [name, label] of [
    ['used', 'env=test'],
    ['idle', 'env=test'],
    ['other', 'env=prod'],
  ]) {
    t.equal((await cli(dir, ['volume', 'create', name, '--label', label])).exitCode, 0);
  }
  await cli(dir, ['mount', ctr, 'used:/u']);
  const pruned = await cli(dir, ['volume', 'prune', '--filter', 'label=env=test', '--force', '--json']);
  t.same(JSON.parse(pruned.stdout), ['idle']);
  t.same(
    JSON.parse((await cli(dir, ['volume', 'ls', '--json'])).stdout).map((v: { Name: string }) => v.Name),
    ['other', 'used'],
  );
  t.match((await cli(dir, ['volume', 'prune'])).stderr, /add --force/, 'no terminal, no --force: refused');
  await cli(dir, ['unmount', ctr, '/u']);
});

t.test('--size is a hard quota; tmpfs volumes are tmpfs', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  volumes(t, dir);
  const ctr = await container(t);
  t.equal((await cli(dir, ['volume', 'create', 'capped', '--size', '8M'])).exitCode, 0);
  t.equal((await cli(dir, ['mount', ctr, 'capped:/capped'])).exitCode, 0);
  const dd = await inCtr(ctr, 'dd', 'if=/dev/zero', 'of=/capped/big', 'bs=1M', 'count=32');
  t.not(dd.exitCode, 0, 'writing past the size fails');
  t.match(dd.stderr, /No space left on device/);
  t.equal((await cli(dir, ['volume', 'create', 'scratch', '--opt', 'type=tmpfs,o=size=16m'])).exitCode, 0);
  t.equal((await cli(dir, ['mount', ctr, 'scratch:/scratch'])).exitCode, 0);
  t.match((await inCtr(ctr, 'grep', ' /scratch ', '/proc/mounts')).stdout, /^tmpfs \/scratch tmpfs /);
  for (const p of ['/capped', '/scratch']) await cli(dir, ['unmount', ctr, p]);
  for (const v of ['capped', 'scratch']) t.equal((await cli(dir, ['volume', 'rm', v])).exitCode, 0);
});

t.test('copy-up for a fresh named volume, :nocopy and bind mounts skip it', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  volumes(t, dir);
  const ctr = await container(t);
  t.equal((await cli(dir, ['mount', ctr, 'etcvol:/etc'])).exitCode, 0);
  const path = (await cli(dir, ['volume', 'path', 'etcvol'])).stdout.trim();
  t.ok(existsSync(join(path, 'passwd')), "the image's /etc was copied into the volume");
  t.match((await inCtr(ctr, 'cat', '/etc/passwd')).stdout, /^root:/, 'and is still seen inside');
  t.equal((await cli(dir, ['mount', ctr, 'bare:/bin:nocopy'])).exitCode, 0);
  t.same(
    JSON.parse((await cli(dir, ['volume', 'inspect', 'bare'])).stdout)[0].UsageData.Size < 8192,
    true,
    ':nocopy: the volume stays empty',
  );
  await cli(dir, ['unmount', ctr, '/bin']);
  const host = mkdtempSync(join(tmpdir(), 'pipewright-bind-'));
  t.teardown(() => rmSync(host, { recursive: true, force: true }));
  t.equal((await cli(dir, ['mount', ctr, `${host}:/etc/app`])).exitCode, 0);
  t.equal((await inCtr(ctr, 'ls', '/etc/app')).stdout, '', 'a bind mount shows the host directory as it is');
  await cli(dir, ['unmount', ctr, '/etc/app']);
  await cli(dir, ['unmount', ctr, '/etc']);
});

t.test('bad names, traversal and sensitive paths are refused and change nothing', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const ctr = await container(t);
  const cases: [string[], RegExp, number][] = [
    [['volume', 'create', '../escape'], /must match/, 2],
    [['volume', 'create', 'a/b'], /must match/, 2],
    [['mount', ctr, '../x:/data'], /must match/, 2],
    [['mount', ctr, 'data:/a/../../etc'], /without \.\./, 2],
    [['mount', ctr, '/:/host'], /exposes the host/, 1],
    [['mount', ctr, '/proc/self:/p'], /exposes the host/, 1],
    [['mount', ctr, `${dir}:/state`], /exposes the host/, 1],
    [['mount', ctr, '/no/such/dir:/x'], /does not exist/, 1],
  ];
  for (const [args, re, code] of cases) {
    const r = await cli(dir, args);
    t.equal(r.exitCode, code, args.join(' '));
    t.match(r.stderr, re);
  }
  t.same(JSON.parse((await cli(dir, ['volume', 'ls', '--json'])).stdout), [], 'no volume was made');
  t.equal((await inCtr(ctr, 'ls', '/host')).exitCode, 1, 'nothing appeared in the container');
});

t.test(
  'two creates of one volume at once: one wins, the loser touches nothing',
  { skip: !isRoot && 'needs root (volume backing mounts)' },
  async (t) => {
    const dir = stateDir(t);
    for (let round = 0; round < 5; round++) {
      const name = `race${round}`;
      const [a, b] = await Promise.all([
        cli(dir, ['volume', 'create', name, '--opt', 'type=tmpfs,o=size=1m']),
        cli(dir, ['volume', 'create', name, '--opt', 'type=tmpfs,o=size=1m']),
      ]);
      t.same([a.exitCode, b.exitCode].sort(), [0, 1], `round ${round}: exactly one create succeeded`);
      t.match((a.exitCode ? a : b).stderr, /exists already/);
      const path = (await cli(dir, ['volume', 'path', name])).stdout.trim();
      t.ok(existsSync(path), "the winner's data directory is still there");
      t.equal((await cli(dir, ['volume', 'rm', name])).exitCode, 0);
    }
  },
);

t.test(
  'a bind-backed volume is mounted once however often it is used, and rm removes it',
  { skip: !isRoot && 'needs root (mounts)' },
  async (t) => {
    const dir = stateDir(t);
    const src = mkdtempSync(join(tmpdir(), 'pipewright-bindsrc-'));
    t.teardown(() => rmSync(src, { recursive: true, force: true }));
    writeFileSync(join(src, 'keep'), 'data');
    t.equal((await cli(dir, ['volume', 'create', 'bound', '--opt', `type=none,o=bind,device=${src}`])).exitCode, 0);
    let path = '';
    for (let i = 0; i < 3; i++) path = (await cli(dir, ['volume', 'path', 'bound'])).stdout.trim();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.split(' ')[4] === path);
    t.equal(
      mounts.length,
      1,
      'one mount on _data after three uses (a bind from the same filesystem is seen in mountinfo)',
    );
    const rm = await cli(dir, ['volume', 'rm', 'bound']);
    t.equal(rm.exitCode, 0, rm.stderr);
    t.equal(readFileSync(join(src, 'keep'), 'utf8'), 'data', "the bind source's files are untouched");
  },
);

t.test(
  'a bind-backed volume honours o=bind,ro and keeps the source it was created with',
  { skip: !isRoot && 'needs root (mounts)' },
  async (t) => {
    const dir = stateDir(t);
    const base = mkdtempSync(join(tmpdir(), 'pipewright-bindro-'));
    t.teardown(() => rmSync(base, { recursive: true, force: true }));
    for (const d of ['real', 'other']) {
      mkdirSync(join(base, d));
      writeFileSync(join(base, d, 'who'), d);
    }
    symlinkSync(join(base, 'real'), join(base, 'link'));
    const create = await cli(dir, [
      'volume',
      'create',
      'ro',
      '--opt',
      `type=none,o=bind,ro,device=${join(base, 'link')}`,
    ]);
    t.equal(create.exitCode, 0, create.stderr);
    const path = (await cli(dir, ['volume', 'path', 'ro'])).stdout.trim();
    t.teardown(() => sh('umount', [path]));
    t.equal(readFileSync(join(path, 'who'), 'utf8'), 'real');
    t.throws(() => writeFileSync(join(path, 'new'), 'x'), /EROFS/, 'o=bind,ro: read-only');
    t.equal(
      JSON.parse((await cli(dir, ['volume', 'inspect', 'ro'])).stdout)[0].Options.device,
      join(base, 'real'),
      'the source was resolved at create',
    );
    // The link now points elsewhere; after an unmount (a reboot) the volume comes back from the same directory.
    rmSync(join(base, 'link'));
    symlinkSync(join(base, 'other'), join(base, 'link'));
    await must('umount', [path]);
    t.equal((await cli(dir, ['volume', 'path', 'ro'])).exitCode, 0);
    t.equal(readFileSync(join(path, 'who'), 'utf8'), 'real', 'still the directory resolved at create');
    // A component of the recorded path swapped for a symlink: refused, not followed.
    await must('umount', [path]);
    renameSync(join(base, 'real'), join(base, 'moved'));
    symlinkSync(join(base, 'other'), join(base, 'real'));
    const again = await cli(dir, ['volume', 'path', 'ro']);
    t.equal(again.exitCode, 1);
    t.match(again.stderr, /bind source .* cannot be opened .*restore it or remove the volume/);
    t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(path), 'nothing was mounted');
    t.equal(
      (await cli(dir, ['volume', 'create', 'bad', '--opt', `type=none,o=bind,suid,device=${base}`])).exitCode,
      2,
      'unknown o= words are refused',
    );
    t.equal((await cli(dir, ['volume', 'rm', 'ro'])).exitCode, 0);
  },
);

t.test(
  'copy-up reads the container from inside: a directory swapped for a symlink to a host path copies no host file',
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    volumes(t, dir);
    const ctr = await container(t);
    const secret = mkdtempSync(join(tmpdir(), 'pipewright-secret-'));
    t.teardown(() => rmSync(secret, { recursive: true, force: true }));
    writeFileSync(join(secret, 'id_rsa'), 'host secret');
    t.equal((await inCtr(ctr, 'mkdir', '-p', '/srv/app')).exitCode, 0);
    // mount stops right after it resolved /srv/app in the container; the container swaps it meanwhile.
    const mount = execa(CLI, ['mount', ctr, 'fresh:/srv/app'], {
      reject: false,
      env: { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_FAULT: 'prepare /srv/app:stop' },
    });
    await waitStopped(mount.pid!);
    t.equal((await inCtr(ctr, 'sh', '-c', `rm -rf /srv/app && ln -s ${secret} /srv/app`)).exitCode, 0);
    process.kill(mount.pid!, 'SIGCONT');
    const r = await mount;
    const path = join(dir, 'volumes', 'fresh', '_data');
    t.notOk(existsSync(join(path, 'id_rsa')), 'no host file in the volume');
    t.equal(r.exitCode, 1, 'the mount fails: the symlink leads nowhere inside the container');
    t.match(r.stderr, /open in the container \/srv\/app/);
  },
);
