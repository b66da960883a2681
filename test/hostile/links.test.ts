/**
 * A guest that renames or replaces the link pipewright gave it (audit #1). The guest is root in
 * its own user namespace (`unshare -Urn`), so it may rename, delete and make links in its network
 * namespace, and pick their names, MACs and indexes. Detach must remove the link it made (found by
 * the index recorded at attach, checked by kind, parent and MAC) whatever its name, or refuse in
 * one line; it must never free a lease while the guest holds a child of the parent with the
 * attachment's MAC, nor move any link but the NIC it moved in back to the host.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { cli, hostLinks, isRoot, must, nicPair, removeLinkAtEnd, ROOT_REASON, stateDir } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;

/** Waits until `pid` runs `sleep` in a network namespace other than `than`'s: unshare is done. */
async function settled(pid: number, than: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    try {
      if (
        readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep' &&
        readlinkSync(`/proc/${pid}/ns/net`) !== readlinkSync(than)
      )
        return pid;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never got a namespace of its own`);
}

/** A process in a network namespace of its own (`argv` ends in unshare -n sleep), killed at teardown. */
async function sleeper(t: Test, argv: string[], than: string): Promise<number> {
  const proc = execa(argv[0], [...argv.slice(1), 'sleep', '600'], { reject: false });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  return settled(proc.pid!, than);
}

/** A guest that is root in a user namespace of its own, with a network namespace it owns: `pid:<n>`. */
const userGuest = (t: Test) => sleeper(t, ['unshare', '-Urn'], '/proc/self/ns/net');

/** `ip ...` as the guest's root: its user namespace's powers over its own network namespace, no more. */
const asGuest = (pid: number, args: string[]) =>
  must('nsenter', ['-t', String(pid), '-U', '-n', '--preserve-credentials', 'ip', ...args]);

interface KernelLink {
  ifname: string;
  ifindex: number;
  address: string;
  linkinfo?: { info_kind: string };
}

/** What the kernel holds in the guest's namespace, as the host's root reads it. */
async function guestLinks(pid: number): Promise<KernelLink[]> {
  return JSON.parse(await must('nsenter', ['-t', String(pid), '-n', 'ip', '-j', '-d', 'link', 'show']));
}

const byName = (links: KernelLink[], name: string) => links.find((l) => l.ifname === name);
const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);
const leases = (dir: string) => json(dir, ['lease', 'ls']) as Promise<{ address: string }[]>;

/** A guest with a macvlan of a stand-in NIC, its address from a pool; the MAC and index it was made with. */
async function macvlanGuest(t: Test, net: string) {
  const dir = stateDir(t);
  const parent = await nicPair(t, 'p');
  const pid = await userGuest(t);
  t.equal((await cli(dir, ['pool', 'create', 'lan', `${net}.0/24`])).exitCode, 0);
  const r = await cli(dir, ['attach', parent, `pid:${pid}`, 'pool:lan', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const eth0 = byName(await guestLinks(pid), 'eth0')!;
  t.equal(eth0.linkinfo?.info_kind, 'macvlan');
  t.equal((await leases(dir)).length, 1, 'one lease');
  return { dir, parent, pid, mac: eth0.address, index: eth0.ifindex };
}

t.test('the guest renamed its macvlan: detach removes it by its index and frees the lease', { skip }, async (t) => {
  const { dir, pid, index } = await macvlanGuest(t, '10.231.1');
  await asGuest(pid, ['link', 'set', 'eth0', 'down']);
  await asGuest(pid, ['link', 'set', 'eth0', 'name', 'eth9']);
  const r = await cli(dir, ['detach', `pid:${pid}`]);
  t.equal(r.exitCode, 0, r.stderr);
  const links = await guestLinks(pid);
  t.notOk(
    byName(links, 'eth9') ?? links.find((l) => l.ifindex === index),
    'the renamed macvlan is gone from the guest',
  );
  t.same(await leases(dir), [], 'the lease is free: nothing holds its address');
  t.same(await json(dir, ['ls']), [], 'no record');
});

t.test(
  'the guest renamed its macvlan and made another of the parent with its MAC: only ours goes, the lease stays',
  { skip },
  async (t) => {
    const { dir, parent, pid, mac, index } = await macvlanGuest(t, '10.231.2');
    await asGuest(pid, ['link', 'set', 'eth0', 'down']);
    await asGuest(pid, ['link', 'set', 'eth0', 'name', 'x']);
    // A macvlan of a macvlan is the kernel's child of the real parent: the impostor is on the parent's LAN.
    await asGuest(pid, ['link', 'add', 'eth0', 'link', 'x', 'address', mac, 'type', 'macvlan']);
    const impostor = byName(await guestLinks(pid), 'eth0')!;
    t.not(impostor.ifindex, index);

    const r = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(r.exitCode, 1, 'detach refuses');
    t.match(
      r.stderr,
      new RegExp(
        `^pipewright: .*the guest holds a macvlan of ${parent} that is not the one pipewright made as eth0: eth0 \\(index ${impostor.ifindex}, MAC ${mac}\\)`,
      ),
    );
    t.equal(r.stderr.trim().split('\n').length, 1, 'in one line');
    const links = await guestLinks(pid);
    t.notOk(
      links.find((l) => l.ifindex === index),
      'our macvlan (renamed x) is removed, by its index',
    );
    t.equal(byName(links, 'eth0')?.ifindex, impostor.ifindex, "the guest's own eth0 is left alone");
    t.equal((await leases(dir)).length, 1, 'the lease is kept while the guest holds the MAC on the parent');
    t.equal((await json(dir, ['ls'])).length, 1, 'and the record');

    await asGuest(pid, ['link', 'del', 'eth0']);
    const again = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(again.exitCode, 0, again.stderr);
    t.same(await leases(dir), [], 'freed once the guest let go');
    t.same(await json(dir, ['ls']), []);
  },
);

t.test(
  'the guest renamed its macvlan and made a veth named eth0 with its MAC: ours goes, the veth stays',
  { skip },
  async (t) => {
    const { dir, pid, mac, index } = await macvlanGuest(t, '10.231.3');
    await asGuest(pid, ['link', 'set', 'eth0', 'down']);
    await asGuest(pid, ['link', 'set', 'eth0', 'name', 'x']);
    await asGuest(pid, ['link', 'add', 'eth0', 'address', mac, 'type', 'veth', 'peer', 'name', 'y']);
    const impostor = byName(await guestLinks(pid), 'eth0')!;
    const r = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(r.exitCode, 0, r.stderr);
    const links = await guestLinks(pid);
    t.notOk(
      links.find((l) => l.ifindex === index),
      'our macvlan is removed',
    );
    t.match(
      byName(links, 'eth0'),
      { ifindex: impostor.ifindex, linkinfo: { info_kind: 'veth' } },
      "the guest's veth is untouched",
    );
    t.same(await leases(dir), [], 'the lease is free: a veth in the guest is not on the parent');
  },
);

t.test(
  '--direct-phys: the guest renamed the NIC and made a veth with its name and MAC; the NIC comes home',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const nic = await nicPair(t, 'd');
    const pid = await userGuest(t);
    const index = Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8'));
    const mac = readFileSync(`/sys/class/net/${nic}/address`, 'utf8').trim();
    const r = await cli(dir, ['attach', nic, `pid:${pid}`, '10.231.4.2/24', '--direct-phys', '-i', 'eth1']);
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(byName(await guestLinks(pid), 'eth1')?.ifindex, index, 'the NIC keeps its index in the guest');

    await asGuest(pid, ['link', 'set', 'eth1', 'down']);
    await asGuest(pid, ['link', 'set', 'eth1', 'name', 'x']);
    await asGuest(pid, ['link', 'add', 'eth1', 'address', mac, 'type', 'veth', 'peer', 'name', 'e']);
    const impostor = byName(await guestLinks(pid), 'eth1')!;

    const d = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(d.exitCode, 0, d.stderr);
    t.equal(
      Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8')),
      index,
      `the host's ${nic} is the NIC moved in (its index)`,
    );
    const home = JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', nic]))[0];
    t.equal(home.link, `${nic}x`, 'and still wired to its own peer');
    const links = await guestLinks(pid);
    t.equal(byName(links, 'eth1')?.ifindex, impostor.ifindex, "the guest's veth stays in the guest");
    t.notOk(byName(links, 'x'), 'the NIC left the guest');
    t.notOk((await hostLinks()).includes('e'), 'nothing of the guest reached the host');
  },
);

t.test(
  '--direct-phys: a NIC the guest moved away is refused in one line, and nothing reaches the host',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const nic = await nicPair(t, 'd');
    const pid = await userGuest(t);
    const index = Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8'));
    t.equal(
      (await cli(dir, ['attach', nic, `pid:${pid}`, '10.231.5.2/24', '--direct-phys', '-i', 'eth1'])).exitCode,
      0,
    );
    // The guest hands the NIC to a namespace of its own and leaves a veth under its name in its place (another index).
    const inner = await sleeper(
      t,
      ['nsenter', '-t', String(pid), '-U', '-n', '--preserve-credentials', 'unshare', '-n'],
      `/proc/${pid}/ns/net`,
    );
    await asGuest(pid, ['link', 'set', 'eth1', 'netns', String(inner)]);
    await asGuest(pid, ['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'e']);
    const before = await hostLinks();

    const d = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(d.exitCode, 1);
    t.match(
      d.stderr,
      new RegExp(
        `^pipewright: .*the NIC moved in from ${nic} is not in the guest as it was moved in .*nothing was moved to the host`,
      ),
    );
    t.equal(d.stderr.trim().split('\n').length, 1, 'in one line');
    t.same(await hostLinks(), before, 'the host has the links it had');
    t.equal((await json(dir, ['ls'])).length, 1, 'the record stays');

    // The guest gives the NIC back: detach brings it home.
    await asGuest(pid, ['link', 'del', 'eth1']);
    await must('nsenter', [
      '-t',
      String(inner),
      '-U',
      '-n',
      '--preserve-credentials',
      'ip',
      'link',
      'set',
      'eth1',
      'netns',
      String(pid),
    ]);
    t.equal((await cli(dir, ['detach', `pid:${pid}`])).exitCode, 0, 'detach, once the NIC is back in the guest');
    t.equal(Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8')), index, 'the NIC is home');
    t.same(await json(dir, ['ls']), []);
  },
);

t.test(
  '--direct-phys: a NIC a killed detach left on the host under its landing name is named home by the next',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const nic = await nicPair(t, 'd');
    const pid = await userGuest(t);
    const index = Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8'));
    t.equal(
      (await cli(dir, ['attach', nic, `pid:${pid}`, '10.231.6.2/24', '--direct-phys', '-i', 'eth1'])).exitCode,
      0,
    );
    // Where moveHome puts it before the rename (model/host-names.ts childTempName).
    const landing = `pwn${createHash('sha1').update(nic).digest('hex').slice(0, 8)}`;
    removeLinkAtEnd(t, landing);
    await must('nsenter', ['-t', String(pid), '-n', 'ip', 'link', 'set', 'eth1', 'netns', '1', 'name', landing]);
    const d = await cli(dir, ['detach', `pid:${pid}`]);
    t.equal(d.exitCode, 0, d.stderr);
    t.equal(Number(readFileSync(`/sys/class/net/${nic}/ifindex`, 'utf8')), index, 'the NIC is home under its name');
    t.notOk((await hostLinks()).includes(landing));
  },
);
