/**
 * The powers pipewright checks in itself (lackOfPowers) and in a daemon socket's callers
 * (weakerThan), on /proc texts and bounds made here.
 */
import t from 'tap';
import { boundsOf, lackOfPowers, weakerThan } from '../../src/kernel/powers.js';

const HOST_MAP = '         0          0 4294967295\n';
const status = (capEff: string) => `Name:\tpipewright\nCapEff:\t${capEff}\n`;

t.test("a process's own powers", async (t) => {
  t.equal(lackOfPowers(status('000001ffffffffff'), HOST_MAP), undefined, "root's full set in the host's user namespace");
  t.equal(lackOfPowers(status('0000000000201000'), HOST_MAP), undefined, 'CAP_NET_ADMIN and CAP_SYS_ADMIN are enough');
  t.equal(lackOfPowers(status('0000000000200000'), HOST_MAP), 'lacks CAP_NET_ADMIN');
  t.equal(lackOfPowers(status('0000000000000000'), HOST_MAP), 'lacks CAP_NET_ADMIN and CAP_SYS_ADMIN');
  t.match(lackOfPowers(status('000001ffffffffff'), '         0       1000          1\n'), /user namespace of its own/, 'root of another user namespace');
  t.match(lackOfPowers(status('000001ffffffffff'), '         0          0 4294967295\n      1000     100000      65536\n'), /user namespace of its own/);
});

t.test("a socket's caller, compared with the daemon", async (t) => {
  const mine = boundsOf('self');
  t.equal(weakerThan(mine, new Map(mine)), undefined, 'a caller bound as the daemon is');
  const more = new Map(mine).set('CapEff', 'ffffffffffffffff').set('CapBnd', '0');
  t.equal(weakerThan(mine, more), undefined, 'more capabilities, or another bounding set, do not matter');
  const fewer = new Map(mine).set('CapEff', '0');
  if (BigInt(`0x${mine.get('CapEff')}`)) t.match(weakerThan(mine, fewer), /^fewer capabilities \(CapEff lacks 0x[0-9a-f]+\)$/);
  t.equal(weakerThan(mine, new Map(mine).set('net namespace', '0:1').set('user namespace', '0:2')), 'another user namespace, another net namespace');
  t.equal(
    weakerThan(mine, new Map(mine).set('pid namespace', '0:3').set('cgroup namespace', '0:4')),
    undefined,
    "namespaces a call's paths and links do not depend on",
  );
  const filtered = new Map(mine).set('Seccomp', '2');
  t.equal(weakerThan(mine, filtered), mine.get('Seccomp') === '2' ? undefined : 'a seccomp filter');
});
