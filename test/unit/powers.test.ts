/**
 * The powers pipewright checks in itself (lackOfPowers) and in a daemon socket's callers
 * (weakerThan), on /proc texts and bounds made here.
 */
import t from 'tap';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boundsOf, INIT_USER_NS_INO, lackOfPowers, weakerThan } from '../../src/net/netns/powers.js';
import { CLI, isRoot, ROOT_REASON, until } from '../helpers/host.js';

const status = (capEff: string) => `Name:\tpipewright\nCapEff:\t${capEff}\n`;

t.test("a process's own powers", async (t) => {
  t.equal(
    lackOfPowers(status('000001ffffffffff'), INIT_USER_NS_INO),
    undefined,
    "root's full set in the host's user namespace",
  );
  t.equal(
    lackOfPowers(status('0000000000201000'), INIT_USER_NS_INO),
    undefined,
    'CAP_NET_ADMIN and CAP_SYS_ADMIN are enough',
  );
  t.equal(lackOfPowers(status('0000000000200000'), INIT_USER_NS_INO), 'lacks CAP_NET_ADMIN');
  t.equal(lackOfPowers(status('0000000000000000'), INIT_USER_NS_INO), 'lacks CAP_NET_ADMIN and CAP_SYS_ADMIN');
  t.match(
    lackOfPowers(status('000001ffffffffff'), 0xf0000000 + 1234),
    /user namespace of its own/,
    'root of another user namespace',
  );
  t.equal(
    lackOfPowers(),
    isRoot ? undefined : 'lacks CAP_NET_ADMIN and CAP_SYS_ADMIN',
    'this process, as /proc has it',
  );
});

t.test(
  "a child user namespace's root is refused, even with the host's full identity map (audit #23)",
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const child = execa('unshare', ['-U', 'sleep', '60'], { reject: false });
    t.teardown(() => {
      child.kill('SIGKILL');
    });
    const mine = readlinkSync('/proc/self/ns/user');
    t.not(
      await until(() => readlinkSync(`/proc/${child.pid}/ns/user`) !== mine, 5000),
      -1,
      'the child has its own user namespace',
    );
    // Root may map the whole range 1:1: inside, uid_map reads exactly as the host's.
    for (const map of ['uid_map', 'gid_map']) writeFileSync(`/proc/${child.pid}/${map}`, '0 0 4294967295\n');
    const inside = (file: string, args: string[], env: Record<string, string> = {}) =>
      execa('nsenter', ['-t', String(child.pid), '-U', '--', file, ...args], { reject: false, env });
    t.match((await inside('cat', ['/proc/self/uid_map'])).stdout, /^\s*0\s+0\s+4294967295\s*$/);
    const dir = mkdtempSync(join(tmpdir(), 'pipewright-powers-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const ls = await inside(CLI, ['ls'], { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_CLI_SOCKET: '' });
    t.equal(ls.exitCode, 1, ls.stdout);
    t.match(ls.stderr, /^pipewright: this command needs root .* this process runs in a user namespace of its own/);
    t.equal(ls.stderr.trim().split('\n').length, 1, 'one line');
    t.notOk(existsSync(join(dir, 'pipewright.db')), 'the store was not touched');
  },
);

t.test("a socket's caller, compared with the daemon", async (t) => {
  const mine = boundsOf('self');
  t.equal(weakerThan(mine, new Map(mine)), undefined, 'a caller bound as the daemon is');
  const more = new Map(mine).set('CapEff', 'ffffffffffffffff').set('CapBnd', '0');
  t.equal(weakerThan(mine, more), undefined, 'more capabilities, or another bounding set, do not matter');
  const fewer = new Map(mine).set('CapEff', '0');
  if (BigInt(`0x${mine.get('CapEff')}`))
    t.match(weakerThan(mine, fewer), /^fewer capabilities \(CapEff lacks 0x[0-9a-f]+\)$/);
  t.equal(
    weakerThan(mine, new Map(mine).set('net namespace', '0:1').set('user namespace', '0:2')),
    'another user namespace, another net namespace',
  );
  t.equal(
    weakerThan(mine, new Map(mine).set('pid namespace', '0:3').set('cgroup namespace', '0:4')),
    undefined,
    "namespaces a call's paths and links do not depend on",
  );
  const filtered = new Map(mine).set('Seccomp', '2');
  t.equal(weakerThan(mine, filtered), mine.get('Seccomp') === '2' ? undefined : 'a seccomp filter');
});
