/**
 * ipvlan (l2, l3, l3s), 802.1q VLAN and dummy guests against the real kernel: guests reach each
 * other (a VLAN guest only its own VLAN; a dummy's address through the guest's other interface),
 * detach leaves nothing, a failure mid-attach rolls back. A kernel built without a kind refuses
 * it: then the tests of that kind skip with the kernel's own words, and the one-line error is what
 * is tested. `npm run vm-test` runs this file in a VM with Debian's stock kernel, which has all three.
 */
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import {
  dockerNetworkCreate,
  cli,
  CNI_PLUGIN,
  dockerUp,
  hostLinks,
  inNs,
  isRoot,
  must,
  netns,
  nicPair,
  ping,
  removeLinkAtEnd,
  RUN,
  ROOT_REASON,
  sh,
  startDaemon,
  stateDir,
  TEST_IMAGE,
  uniq,
} from '../helpers/host.js';

type Kind = 'ipvlan' | 'vlan' | 'dummy';
const TYPE_ARGS: Record<Exclude<Kind, 'dummy'>, string[]> = {
  ipvlan: ['ipvlan', 'mode', 'l2'],
  vlan: ['vlan', 'id', '2'],
};

/** Why this kernel cannot make `kind` links (its own words), or null when it can. */
async function kernelRefusal(kind: Kind): Promise<string | null> {
  if (!isRoot) return ROOT_REASON;
  if (kind === 'dummy') return dummyRefusal();
  const parent = uniq('k');
  await must('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', `${parent}x`]);
  try {
    const made = await sh('ip', ['link', 'add', 'link', parent, 'name', `${parent}c`, 'type', ...TYPE_ARGS[kind]]);
    return made.exitCode === 0 ? null : `this kernel refuses ${kind} links: ${made.stderr.trim()}`;
  } finally {
    await sh('ip', ['link', 'del', parent]);
  }
}

/** Asked without loading the module: its first load is pipewright's to make (see the dummy test). */
async function dummyRefusal(): Promise<string | null> {
  if (existsSync('/sys/module/dummy')) return null;
  const found = await sh('modprobe', ['--dry-run', 'dummy']);
  return found.exitCode === 0 ? null : `this kernel refuses dummy links: ${found.stderr.trim()}`;
}

const refusal: Record<Kind, string | null> = {
  ipvlan: await kernelRefusal('ipvlan'),
  vlan: await kernelRefusal('vlan'),
  dummy: await kernelRefusal('dummy'),
};
const skipIf = (kind: Kind) => ({ skip: refusal[kind] ?? false });
const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);
const linkOf = async (ns: string, ifname = 'eth0') =>
  JSON.parse((await inNs(ns, ['ip', '-j', '-d', 'link', 'show', ifname])).stdout)[0];
const macOf = async (dev: string) => JSON.parse(await must('ip', ['-j', 'link', 'show', dev]))[0].address as string;

for (const mode of ['l2', 'l3', 'l3s'] as const) {
  t.test(
    `ipvlan ${mode}: two guests of one parent reach each other with the parent's MAC; detach leaves nothing`,
    skipIf('ipvlan'),
    async (t) => {
      const dir = stateDir(t);
      const [a, b] = [await netns(t), await netns(t)];
      const parent = await nicPair(t, 'p');
      const links = await hostLinks();
      const ra = await cli(dir, ['attach', parent, a, '10.235.0.2/24', '--ipvlan', mode, '--json']);
      t.equal(ra.exitCode, 0, ra.stderr);
      t.match(JSON.parse(ra.stdout), { kind: 'ipvlan', mac: await macOf(parent) });
      t.equal((await cli(dir, ['attach', parent, b, '10.235.0.3/24', '--ipvlan', mode, '-i', 'lan0'])).exitCode, 0);
      const link = await linkOf(a);
      t.equal(link.linkinfo.info_kind, 'ipvlan');
      t.equal(link.linkinfo.info_data.mode, mode, `mode ${mode} in the kernel`);
      t.equal(link.address, await macOf(parent), "the parent's MAC");
      t.ok(await ping(a, '10.235.0.3'), 'a -> b');
      t.ok(await ping(b, '10.235.0.2'), 'b -> a');
      t.equal((await cli(dir, ['detach', a])).exitCode, 0);
      t.equal((await cli(dir, ['detach', b, '-i', 'lan0'])).exitCode, 0);
      t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'gone from guest a');
      t.equal((await inNs(b, ['ip', 'link', 'show', 'lan0'])).exitCode, 1, 'gone from guest b');
      t.same(await hostLinks(), links, 'the host has the links it had, its parent among them');
      t.same(await json(dir, ['ls']), [], 'nothing recorded');
    },
  );
}

/** A stand-in switch port: the far end of a stand-in NIC, in a netns of its own, with VLAN interfaces. */
async function switchPort(t: Test, parent: string): Promise<string> {
  const sw = await netns(t, 's');
  await must('ip', ['link', 'set', `${parent}x`, 'netns', sw]);
  await must('ip', ['-n', sw, 'link', 'set', `${parent}x`, 'up']);
  return sw;
}

async function vlanOnSwitch(sw: string, parent: string, id: number, address: string): Promise<void> {
  await must('ip', ['-n', sw, 'link', 'add', 'link', `${parent}x`, 'name', `v${id}`, 'type', 'vlan', 'id', String(id)]);
  await must('ip', ['-n', sw, 'address', 'add', address, 'dev', `v${id}`]);
  await must('ip', ['-n', sw, 'link', 'set', `v${id}`, 'up']);
}

t.test(
  'vlan: the guest interface is VLAN <id> of the NIC, its frames tagged; one guest per id; detach leaves nothing',
  skipIf('vlan'),
  async (t) => {
    const dir = stateDir(t);
    const [a, b, c] = [await netns(t), await netns(t), await netns(t)];
    const parent = await nicPair(t, 'p');
    const sw = await switchPort(t, parent);
    await vlanOnSwitch(sw, parent, 10, '10.236.10.1/24');
    await must('ip', ['-n', sw, 'address', 'add', '10.236.0.1/24', 'dev', `${parent}x`]);
    const links = await hostLinks();

    const ra = await cli(dir, [
      'attach',
      parent,
      a,
      '10.236.10.2/24',
      '--vlan',
      '10',
      '--mac',
      '02:aa:00:00:0a:02',
      '--json',
    ]);
    t.equal(ra.exitCode, 0, ra.stderr);
    t.match(JSON.parse(ra.stdout), { kind: 'vlan', mac: '02:aa:00:00:0a:02' });
    const link = await linkOf(a);
    t.match(link.linkinfo, { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: 10 } });
    t.ok(await ping(a, '10.236.10.1'), "the switch's VLAN 10 answers the guest");
    // Tagged 11, the frames reach no interface of the switch's: its untagged address stays out of reach.
    t.equal((await cli(dir, ['attach', parent, b, '10.236.0.2/24', '--vlan', '11'])).exitCode, 0);
    t.notOk(await ping(b, '10.236.0.1'), 'VLAN 11 does not reach the untagged LAN');

    const again = await cli(dir, ['attach', parent, c, '10.236.10.3/24', '--vlan', '10']);
    t.equal(again.exitCode, 1);
    t.match(
      again.stderr,
      /^pipewright: .*VLAN 10 of \S+ is taken \(the kernel allows one link per VLAN id on a parent\)/,
    );
    t.equal(again.stderr.trim().split('\n').length, 1, 'one line');
    t.equal((await inNs(c, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'nothing in the refused guest');
    t.equal((await json(dir, ['ls'])).length, 2, 'the refused attach is not recorded');

    t.equal((await cli(dir, ['detach', a])).exitCode, 0);
    t.equal((await cli(dir, ['detach', b])).exitCode, 0);
    t.same(await hostLinks(), links, 'the host has the links it had');
    t.same(await json(dir, ['ls']), []);
    const reuse = await cli(dir, ['attach', parent, c, '10.236.10.3/24', '--vlan', '10']);
    t.equal(reuse.exitCode, 0, `VLAN 10 is free again after detach: ${reuse.stderr}`);
    t.ok(await ping(c, '10.236.10.1'));
  },
);

t.test(
  "dummy: host interface none gives the guest a dummy holding a service address, reached through the guest's other interface; detach leaves nothing",
  skipIf('dummy'),
  async (t) => {
    const dir = stateDir(t);
    const [a, b] = [await netns(t), await netns(t)];
    const parent = await nicPair(t, 'p');
    const links = await hostLinks();
    // a and b on one LAN (macvlans of one parent); b routes a's service address through a.
    t.equal((await cli(dir, ['attach', parent, a, '10.244.0.2/24'])).exitCode, 0);
    t.equal((await cli(dir, ['attach', parent, b, '10.244.0.3/24', '--route', '10.99.0.7/32@10.244.0.2'])).exitCode, 0);
    // The first dummy of a boot loads the module, which would make a dummy0 on the host by itself.
    t.comment(
      existsSync('/sys/module/dummy')
        ? 'the dummy module was loaded before'
        : 'the dummy module is loaded by this attach',
    );
    const r = await cli(dir, [
      'attach',
      'none',
      a,
      '10.99.0.7/32',
      'fd99::7/128',
      '-i',
      'svc0',
      '--mtu',
      '9000',
      '--json',
    ]);
    t.equal(r.exitCode, 0, r.stderr);
    t.match(JSON.parse(r.stdout), { kind: 'dummy', hostInterface: 'none', hostLink: null, ifname: 'svc0', mtu: 9000 });
    const link = await linkOf(a, 'svc0');
    t.match(link, { mtu: 9000, linkinfo: { info_kind: 'dummy' } }, 'a dummy in the kernel, with its MTU');
    t.ok(link.flags.includes('UP'), 'up');
    const held = JSON.parse((await inNs(a, ['ip', '-j', 'address', 'show', 'svc0'])).stdout)[0].addr_info.map(
      (x: { local: string; prefixlen: number }) => `${x.local}/${x.prefixlen}`,
    );
    t.same(
      held.filter((x: string) => !x.startsWith('fe80:')).sort(),
      ['10.99.0.7/32', 'fd99::7/128'],
      'its addresses, on it',
    );
    t.same(await hostLinks(), links, 'nothing on the host: a dummy has no host side');
    t.ok(await ping(b, '10.99.0.7'), "b reaches a's service address through a's eth0");
    t.match(await json(dir, ['ls']), [{}, {}, { kind: 'dummy', status: 'ok' }], 'recorded, and the kernel agrees');
    const again = await cli(dir, [
      'attach',
      'none',
      a,
      '10.99.0.7/32',
      'fd99::7/128',
      '-i',
      'svc0',
      '--mtu',
      '9000',
      '--json',
    ]);
    t.match(JSON.parse(again.stdout), { changed: false }, 'the same attach again changes nothing');

    t.equal((await cli(dir, ['detach', a, '-i', 'svc0'])).exitCode, 0);
    t.equal((await inNs(a, ['ip', 'link', 'show', 'svc0'])).exitCode, 1, 'gone from the guest');
    t.notOk(await ping(b, '10.99.0.7'), 'and its address with it');
    t.ok(await ping(b, '10.244.0.2'), "a's eth0 stays");
    t.equal((await cli(dir, ['detach', a])).exitCode, 0);
    t.equal((await cli(dir, ['detach', b])).exitCode, 0);
    t.same(await hostLinks(), links, 'the host has the links it had');
    t.same(await json(dir, ['ls']), [], 'nothing recorded');
  },
);

/** attach's `<host-if>` and flags for a guest of `kind` (a dummy's host interface is none). */
const attachTo = (kind: Kind, parent: string, vlanId: number) =>
  ({ ipvlan: [parent, '--ipvlan', 'l2'], vlan: [parent, '--vlan', String(vlanId)], dummy: ['none'] })[kind];
/** `attach <host-if> <guest> <address> [flags]` for a guest of `kind`. */
const attachArgs = (kind: Kind, parent: string, guest: string, address: string, vlanId = 30) => {
  const [hostIf, ...flags] = attachTo(kind, parent, vlanId);
  return ['attach', hostIf!, guest, address, ...flags];
};

for (const kind of ['ipvlan', 'vlan', 'dummy'] as const) {
  t.test(
    `${kind}: a failure mid-attach rolls back everything, and the same attach then succeeds`,
    skipIf(kind),
    async (t) => {
      const dir = stateDir(t);
      const a = await netns(t);
      const parent = await nicPair(t, 'p');
      const links = await hostLinks();
      // The route's gateway is on no attached subnet: the kernel refuses it in the last step.
      const r = await cli(dir, [...attachArgs(kind, parent, a, '10.237.0.2/24'), '--route', '10.99.0.0/16@10.250.0.1']);
      t.equal(r.exitCode, 1);
      t.match(r.stderr, /^pipewright: configure eth0 in .* failed: /);
      t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'no interface left in the guest');
      t.same(await hostLinks(), links, 'no link left on the host');
      t.same(await json(dir, ['ls']), [], 'nothing recorded');
      const ok = await cli(dir, attachArgs(kind, parent, a, '10.237.0.2/24'));
      t.equal(ok.exitCode, 0, `nothing of the failed attach is in the way (a VLAN id is free again): ${ok.stderr}`);
    },
  );

  t.test(
    `a kernel without ${kind}: one line naming what it lacks, nothing changed`,
    { skip: refusal[kind] === null ? `this kernel makes ${kind} links` : !isRoot && ROOT_REASON },
    async (t) => {
      const dir = stateDir(t);
      const a = await netns(t);
      const parent = await nicPair(t, 'p');
      const links = await hostLinks();
      const r = await cli(dir, attachArgs(kind, parent, a, '10.238.0.2/24'));
      t.equal(r.exitCode, 1);
      const config = { ipvlan: 'CONFIG_IPVLAN', vlan: 'CONFIG_VLAN_8021Q', dummy: 'CONFIG_DUMMY' }[kind];
      t.match(
        r.stderr,
        new RegExp(
          `^pipewright: .*this kernel cannot make ${kind} links \\(built without ${config}, or its module is missing\\)`,
        ),
      );
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      t.same(await hostLinks(), links);
      t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1);
      t.same(await json(dir, ['ls']), []);
    },
  );
}

// A kernel before 6.15 looks a new link's name up in the caller's namespace: a child named like a
// host interface (a guest's eth0 on a host with an eth0) was refused there. The VM's 6.1 has that.
// (A dummy is made by a socket inside the guest, where the name is looked up on every kernel.)
for (const kind of ['macvlan', 'ipvlan', 'vlan', 'dummy'] as const) {
  // One guest per VLAN id: the second guest's is another.
  const args = (parent: string, guest: string, address: string, n: number) =>
    kind === 'macvlan' ? ['attach', parent, guest, address] : attachArgs(kind, parent, guest, address, 40 + n);
  t.test(
    `${kind}: a guest interface may bear a host interface's name; a name the guest has is refused, nothing left`,
    kind === 'macvlan' ? {} : skipIf(kind),
    async (t) => {
      const dir = stateDir(t);
      const [a, b] = [await netns(t), await netns(t)];
      const parent = await nicPair(t, 'p');
      const links = await hostLinks();
      const named = await cli(dir, [...args(parent, a, '10.243.0.2/24', 0), '-i', parent]);
      t.equal(named.exitCode, 0, named.stderr);
      t.match(
        await linkOf(a, parent),
        { ifname: parent, linkinfo: { info_kind: kind } },
        "the guest's interface has the host's name",
      );
      t.same(await hostLinks(), links, 'the host keeps its own');
      await must('ip', ['-n', b, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1']);
      const taken = await cli(dir, [...args(parent, b, '10.243.0.3/24', 1), '-i', 'lan0']);
      t.equal(taken.exitCode, 1);
      t.match(taken.stderr, /^pipewright: .*already has an interface named lan0; choose another with -i$/);
      const left = JSON.parse((await inNs(b, ['ip', '-j', 'link', 'show'])).stdout).map(
        (l: { ifname: string }) => l.ifname,
      );
      t.same(left.sort(), ['lan0', 'lan1', 'lo'], 'only what the guest had');
      t.equal((await cli(dir, ['detach', a, '-i', parent])).exitCode, 0);
      t.same(await json(dir, ['ls']), [], 'nothing recorded');
    },
  );
}

t.test(
  "macvlan on a NIC's VLAN: attach <nic>.<id> (Docker's spelling) and pipework's @<id> make the VLAN interface, shared, made again when lost; gone with its last guest",
  skipIf('vlan'),
  async (t) => {
    const dir = stateDir(t);
    const [a, b] = [await netns(t), await netns(t)];
    const parent = await nicPair(t, 'p');
    const sw = await switchPort(t, parent);
    await vlanOnSwitch(sw, parent, 70, '10.246.0.1/24');
    const links = await hostLinks();
    const vlanIf = `${parent}.70`;
    const ra = await cli(dir, ['attach', vlanIf, a, '10.246.0.2/24', '--json']);
    t.equal(ra.exitCode, 0, ra.stderr);
    t.match(JSON.parse(ra.stdout), { kind: 'macvlan', hostInterface: vlanIf });
    const made = async () => JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', vlanIf]))[0];
    t.match(await made(), { linkinfo: { info_kind: 'vlan', info_data: { id: 70 } } }, 'the VLAN interface is made');
    t.ok(await ping(a, '10.246.0.1'), "the switch's VLAN 70 answers the guest");
    const rb = await cli(dir, ['pipework', parent, b, '10.246.0.3/24', '02:aa:00:00:46:03@70']);
    t.equal(rb.exitCode, 0, rb.stderr);
    t.match(
      await linkOf(b, 'eth1'),
      { address: '02:aa:00:00:46:03', linkinfo: { info_kind: 'macvlan' } },
      "pipework's eth1, its MAC",
    );
    t.ok(await ping(b, '10.246.0.1'), 'pipework @70: on VLAN 70 too');
    t.ok(await ping(b, '10.246.0.2'), 'the two guests share it');

    // A reboot takes the VLAN interface (and the guests' macvlans with it); the same attach makes both again.
    await must('ip', ['link', 'del', vlanIf]);
    t.match(await json(dir, ['ls']), [{ status: /^(?!ok$)/ }, {}], 'the loss shows');
    t.equal((await cli(dir, ['attach', vlanIf, a, '10.246.0.2/24'])).exitCode, 0);
    t.match(await made(), { linkinfo: { info_data: { id: 70 } } }, 'made again');
    t.ok(await ping(a, '10.246.0.1'), 'the guest is back on VLAN 70');

    t.equal((await cli(dir, ['detach', a])).exitCode, 0);
    t.ok(await made(), 'still there: b was on it when a left');
    t.equal((await cli(dir, ['detach', b])).exitCode, 0);
    t.same(await hostLinks(), links, 'the VLAN interface went with its last guest');
    t.same(await json(dir, ['ls']), []);
  },
);

t.test(
  "attach <nic>.<id> on a kernel without 802.1q: one line, and no bridge of that name made; pipework's @<id> wants a NIC",
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const a = await netns(t);
    const parent = await nicPair(t, 'p');
    removeLinkAtEnd(t, `${parent}.71`);
    const br = uniq('b');
    await must('ip', ['link', 'add', br, 'type', 'bridge']);
    removeLinkAtEnd(t, br);
    const links = await hostLinks();
    const onBridge = await cli(dir, ['pipework', br, a, '10.246.1.2/24', '@71']);
    t.equal(onBridge.exitCode, 2);
    t.match(
      onBridge.stderr,
      /^pipewright: pipework: @71 needs a physical interface; \S+ is not one \(VLANs on a Linux bridge are not supported, as in pipework\)$/,
    );
    const badId = await cli(dir, ['attach', `${parent}.5000`, a, '10.246.1.2/24']);
    t.match(
      badId.stderr,
      /^pipewright: VLAN id "5000" must be a whole number from 1 to 4094$/,
      'a NIC with a dot and a number past 4094: not a bridge',
    );
    if (refusal.vlan !== null) {
      const r = await cli(dir, ['attach', `${parent}.71`, a, '10.246.1.2/24']);
      t.equal(r.exitCode, 1);
      t.match(
        r.stderr,
        /^pipewright: .*this kernel cannot make vlan links \(built without CONFIG_VLAN_8021Q, or its module is missing\)/,
      );
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
    t.same(await hostLinks(), links, 'no bridge (nor anything) made');
    t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1);
    t.same(await json(dir, ['ls']), []);
  },
);

t.test(
  'gc removes a VLAN interface pipewright made that no network has any more (network rm killed between its steps)',
  skipIf('vlan'),
  async (t) => {
    const dir = stateDir(t);
    const parent = await nicPair(t, 'p');
    const links = await hostLinks();
    // The network is made by a process of its own (the library, as a program uses it), which ends:
    // the interface's maker is gone.
    const program = `import { openContext, createNetwork, closeContext } from 'pipewright';
    const ctx = await openContext({ stateDir: ${JSON.stringify(dir)} });
    await ctx.ipam.createPool({ name: 'v', cidr: '10.243.60.0/24' });
    await createNetwork(ctx, { name: 'v', kind: 'macvlan', hostIf: ${JSON.stringify(parent)}, pool: 'v', vlan: 60 });
    await closeContext(ctx);`;
    await execa('node', ['--input-type=module', '-e', program]);
    t.match(JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', `${parent}.60`]))[0].linkinfo, {
      info_kind: 'vlan',
      info_data: { id: 60 },
    });
    t.equal(await json(dir, ['gc']).then((a: object[]) => a.length), 0, 'in use by its network: gc leaves it');
    // network rm killed after its first step: the record is gone, the interface is not.
    const db = new Database(`${dir}/pipewright.db`);
    db.prepare('DELETE FROM networks WHERE name = ?').run('v');
    db.close();
    t.match(await json(dir, ['gc']), [
      { kind: 'vlan', target: `${parent}.60`, reason: 'made by pipewright, used by nothing' },
    ]);
    t.same(await hostLinks(), links, 'the VLAN interface is gone');
    t.same(await json(dir, ['gc']), [], 'a second gc has nothing to do');
  },
);

/** One CNI call to pipewright's plugin (no daemon: it runs the CLI itself); its parsed stdout. */
async function cniCall(conf: object, command: 'ADD' | 'DEL', containerId: string, ns: string) {
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/run/netns/${ns}`,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
  };
  const r = await execa(CNI_PLUGIN, [], {
    input: JSON.stringify(conf),
    reject: false,
    env: { ...env, PIPEWRIGHT_CNI_SOCKET: '/run/pipewright-test-no-such-cni.sock' },
  });
  return { code: r.exitCode, out: r.stdout ? JSON.parse(r.stdout) : null, raw: r.stdout + r.stderr };
}

t.test(
  'CNI netconf: "dummy": true makes a dummy with the pool\'s address; DEL leaves nothing',
  skipIf('dummy'),
  async (t) => {
    const dir = stateDir(t);
    const a = await netns(t);
    const links = await hostLinks();
    const conf = {
      cniVersion: '1.0.0',
      name: uniq('net'),
      type: 'pipewright',
      dummy: true,
      subnet: '10.245.0.0/24',
      stateDir: dir,
    };
    const add = await cniCall(conf, 'ADD', 'dummy-a', a);
    t.equal(add.code, 0, add.raw);
    t.match(add.out, {
      interfaces: [{ name: 'eth0', sandbox: `/run/netns/${a}` }],
      ips: [{ address: /^10\.245\.0\.\d+\/24$/ }],
    });
    t.equal(add.out.interfaces.length, 1, 'no host interface in the result');
    t.match(await linkOf(a), { linkinfo: { info_kind: 'dummy' } });
    t.equal((await cniCall(conf, 'DEL', 'dummy-a', a)).code, 0);
    t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'gone from the container');
    t.same(await hostLinks(), links);
    t.same(await json(dir, ['ls']), []);
    t.same(await json(dir, ['lease', 'ls']), [], 'no lease left');
  },
);

t.test(
  'CNI netconf: "dummy" beside "bridge" or "master" is refused, nothing made on the host',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const a = await netns(t);
    const links = await hostLinks();
    for (const other of [{ bridge: uniq('b') }, { master: 'eth0' }]) {
      const conf = {
        cniVersion: '1.0.0',
        name: uniq('net'),
        type: 'pipewright',
        dummy: true,
        ...other,
        subnet: '10.245.1.0/24',
        stateDir: dir,
      };
      const add = await cniCall(conf, 'ADD', 'dummy-b', a);
      t.not(add.code, 0);
      t.match(add.out, { code: 7, msg: /give one of "bridge" \(a bridge\), "master" .* or "dummy": true/ });
    }
    t.same(await hostLinks(), links, 'no bridge made');
    t.same(await json(dir, ['pool', 'ls']), [], 'no pool made');
    t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1);
    t.same(await json(dir, ['ls']), []);
  },
);

for (const kind of ['ipvlan', 'vlan'] as const) {
  t.test(
    `CNI netconf: "master" with "${kind === 'ipvlan' ? 'ipvlanMode' : 'vlan'}" makes ${kind} guests; DEL leaves nothing`,
    skipIf(kind),
    async (t) => {
      const dir = stateDir(t);
      const parent = await nicPair(t, 'p');
      const links = await hostLinks();
      const choice = kind === 'ipvlan' ? { ipvlanMode: 'l3' } : { vlan: 40 };
      const conf = {
        cniVersion: '1.0.0',
        name: uniq('net'),
        type: 'pipewright',
        master: parent,
        ...choice,
        subnet: '10.239.0.0/24',
        stateDir: dir,
      };
      const [a, b] = [await netns(t), await netns(t)];
      const add = await cniCall(conf, 'ADD', `${kind}-a`, a);
      t.equal(add.code, 0, add.raw);
      t.match(add.out, {
        interfaces: [{ name: 'eth0', sandbox: `/run/netns/${a}` }],
        ips: [{ address: /^10\.239\.0\.\d+\/24$/ }],
      });
      t.match(
        (await linkOf(a)).linkinfo,
        kind === 'ipvlan'
          ? { info_kind: 'ipvlan', info_data: { mode: 'l3' } }
          : { info_kind: 'vlan', info_data: { id: 40 } },
      );
      if (kind === 'ipvlan') {
        t.equal((await cniCall(conf, 'ADD', 'ipvlan-b', b)).code, 0);
        t.ok(await ping(b, add.out.ips[0].address.split('/')[0]), 'two ipvlan containers reach each other');
        t.equal((await cniCall(conf, 'DEL', 'ipvlan-b', b)).code, 0);
      }
      t.equal((await cniCall(conf, 'DEL', `${kind}-a`, a)).code, 0);
      t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'gone from the container');
      t.same(await hostLinks(), links);
      t.same(await json(dir, ['ls']), []);
      t.same(await json(dir, ['lease', 'ls']), [], 'no lease left');
    },
  );
}

const docker = isRoot && (await dockerUp());
const DRIVER = `${RUN}pw`;

/** The daemon as Docker's network and IPAM driver; a network of it on `parent` with `opts`, removed at teardown. */
async function dockerNetwork(t: Test, dir: string, subnet: string, opts: string[]): Promise<string> {
  await startDaemon(t, dir, ['--socket', `/run/docker/plugins/${DRIVER}.sock`, '--cni-socket', '']);
  const net = uniq('n');
  const made = await dockerNetworkCreate(net, { driver: DRIVER, ipam: DRIVER, subnet, opts });
  t.equal(made.exitCode, 0, made.stderr);
  t.teardown(() => sh('docker', ['network', 'rm', net]));
  return net;
}

async function dockerRun(t: Test, net: string, ip: string): Promise<string> {
  const name = uniq('c');
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  const r = await sh('docker', ['run', '-d', '--name', name, '--network', net, '--ip', ip, TEST_IMAGE, 'sleep', '600']);
  t.equal(r.exitCode, 0, r.stderr);
  return name;
}

const dockerSkip = (kind: Kind) => ({
  skip: refusal[kind] ?? (!docker && 'needs a running Docker engine (the VM harness starts one)'),
});

t.test(
  "Docker: a macvlan network on VLAN 50 (Docker's -o parent=<nic>.50): its VLAN interface made, tagged frames, gone with the network",
  dockerSkip('vlan'),
  async (t) => {
    const dir = stateDir(t);
    const parent = await nicPair(t, 'p');
    const sw = await switchPort(t, parent);
    await vlanOnSwitch(sw, parent, 50, '10.242.0.1/24');
    const links = await hostLinks();
    const net = await dockerNetwork(t, dir, '10.242.0.0/24', ['-o', `parent=${parent}.50`]);
    t.match(
      JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', `${parent}.50`]))[0].linkinfo,
      { info_kind: 'vlan', info_data: { id: 50 } },
      'the VLAN interface is made',
    );
    t.match((await json(dir, ['network', 'ls']))[0], { kind: 'macvlan', vlan: 50 });
    const a = await dockerRun(t, net, '10.242.0.7');
    t.equal(
      (await sh('docker', ['exec', a, 'ping', '-c', '1', '-W', '2', '10.242.0.1'])).exitCode,
      0,
      "the switch's VLAN 50 answers the container",
    );
    t.equal((await sh('docker', ['rm', '-f', a])).exitCode, 0);
    t.equal((await sh('docker', ['network', 'rm', net])).exitCode, 0);
    t.same(await hostLinks(), links, 'the VLAN interface went with the network');
    t.same(await json(dir, ['ls']), []);
  },
);
