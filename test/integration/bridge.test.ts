/**
 * Two guests on one pipewright bridge, through the real CLI and kernel: they reach each other over
 * IPv4, IPv6 and TCP; attach is idempotent, conflicts are refused, and detach leaves the host
 * (links, rule set) exactly as it was. The same on stand-in hosts the test builds: one with no
 * firewall at all (a fresh host) and one with Docker's FORWARD DROP and br_netfilter, where a
 * plain bridge's guests cannot reach each other.
 */
import t from 'tap';
import { execa } from 'execa';
import {
  cli,
  firewallSnapshot,
  hostLinks,
  inNs,
  isRoot,
  must,
  netns,
  ping,
  removeLinkAtEnd,
  ROOT_REASON,
  stateDir,
  testHost,
  uniq,
} from '../helpers/host.js';

t.test('two guests on a bridge', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b] = [await netns(t), await netns(t)];
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  const before = await firewallSnapshot();
  const linksBefore = await hostLinks();

  const ra = await cli(dir, ['attach', br, a, '10.231.0.2/24', 'fd31::2/64', '--json']);
  t.equal(ra.exitCode, 0, ra.stderr);
  const rb = await cli(dir, ['attach', br, `netns:${b}`, '10.231.0.3/24', 'fd31::3/64']);
  t.equal(rb.exitCode, 0, rb.stderr);
  const attached = JSON.parse(ra.stdout);
  t.equal(attached.kind, 'veth');
  t.equal(attached.changed, true);

  const bridge = JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', br]))[0];
  t.equal(bridge.linkinfo.info_kind, 'bridge', 'the bridge was created');
  const port = JSON.parse(await must('ip', ['-j', 'link', 'show', attached.hostLink]))[0];
  t.equal(port.master, br, 'host end is enslaved to the bridge');
  const guestLink = JSON.parse((await inNs(a, ['ip', '-j', 'addr', 'show', 'eth0'])).stdout)[0];
  t.equal(guestLink.address, attached.mac, 'recorded MAC is the kernel MAC');
  t.ok(guestLink.flags.includes('UP'));
  const v6 = guestLink.addr_info.find((x: { local: string }) => x.local === 'fd31::2');
  t.notOk(v6.tentative, 'IPv6 address usable at once (no DAD)');
  t.ok((await inNs(a, ['ip', '-j', 'link', 'show', 'lo'])).stdout.includes('"UP"'), 'lo is up');

  t.ok(await ping(a, '10.231.0.3'), 'IPv4 ping a -> b');
  t.ok(await ping(b, 'fd31::2'), 'IPv6 ping b -> a');

  const server = execa('ip', ['netns', 'exec', b, 'busybox', 'nc', '-l', '-p', '7777', '-e', 'cat'], { reject: false });
  t.teardown(() => {
    server.kill();
  });
  await new Promise((r) => setTimeout(r, 300));
  const echo = await execa('ip', ['netns', 'exec', a, 'busybox', 'nc', '-w', '2', '10.231.0.3', '7777'], {
    input: 'hello pipewright\n',
    reject: false,
  });
  t.equal(echo.stdout.trim(), 'hello pipewright', 'TCP echo across the bridge');

  const again = await cli(dir, ['attach', br, a, '10.231.0.2/24', 'fd31::2/64', '--json']);
  t.equal(again.exitCode, 0, again.stderr);
  t.equal(JSON.parse(again.stdout).changed, false, 'same attach again changes nothing');
  const conflict = await cli(dir, ['attach', br, a, '10.231.0.9/24']);
  t.equal(conflict.exitCode, 1);
  t.match(conflict.stderr, /already has eth0 attached with other settings/);
  t.equal(conflict.stderr.trim().split('\n').length, 1, 'one-line error');

  const ls = JSON.parse((await cli(dir, ['ls', '--json'])).stdout);
  t.same(
    ls.map((x: { status: string }) => x.status),
    ['ok', 'ok'],
  );

  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.equal((await cli(dir, ['detach', b])).exitCode, 0);
  t.same(await hostLinks(), linksBefore, 'no host interface left (the bridge pipewright made is gone too)');
  t.equal(await firewallSnapshot(), before, 'rule set exactly as before');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), [], 'store is empty');
});

/** Two guests on a plain bridge made by hand on `host` (no pipewright): whether a pings b. */
async function plainBridgePings(
  t: { teardown(fn: () => unknown): void },
  host: Awaited<ReturnType<typeof testHost>>,
): Promise<boolean> {
  const [a, b] = [await netns(t), await netns(t)];
  const br = uniq('pb');
  await host.run('ip', ['link', 'add', br, 'type', 'bridge']);
  await host.run('ip', ['link', 'set', br, 'up']);
  for (const [i, g] of [a, b].entries()) {
    const port = `${br}p${i}`;
    await host.run('ip', ['link', 'add', port, 'master', br, 'up', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', g]);
    await must('ip', ['-n', g, 'address', 'add', `10.234.0.${i + 2}/24`, 'dev', 'eth0']);
    await must('ip', ['-n', g, 'link', 'set', 'eth0', 'up']);
  }
  const pings = (await inNs(a, ['ping', '-c', '2', '-i', '0.2', '-W', '1', '10.234.0.3'])).exitCode === 0;
  await host.run('ip', ['link', 'del', br]);
  return pings;
}

for (const [label, conditions] of [
  ['a fresh host: no firewall rules at all', {}],
  ["Docker's FORWARD DROP and br_netfilter", { dockerForwardDrop: true }],
] as const) {
  for (const firewall of ['iptables', 'nftables']) {
    t.test(`two guests on a bridge, on ${label} (${firewall})`, { skip: !isRoot && ROOT_REASON }, async (t) => {
      const host = await testHost(t, conditions);
      t.equal(
        await plainBridgePings(t, host),
        !conditions.dockerForwardDrop,
        conditions.dockerForwardDrop
          ? "the condition holds: a plain bridge's guests cannot reach each other"
          : 'a plain bridge works here',
      );
      const dir = stateDir(t);
      const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
      const [before, linksBefore] = [await host.firewall(), await host.links()];
      const [a, b] = [await netns(t), await netns(t)];
      // Names on a stand-in host are its own: no run prefix needed.
      for (const [g, n] of [
        [a, 2],
        [b, 3],
      ] as const) {
        const r = await pw('attach', 'br0', g, `10.235.0.${n}/24`, `fd35::${n}/64`);
        t.equal(r.exitCode, 0, r.stderr);
      }
      t.ok(await ping(a, '10.235.0.3'), 'IPv4 ping a -> b through the pipewright bridge');
      t.ok(await ping(b, 'fd35::2'), 'IPv6 ping b -> a');
      t.not(await host.firewall(), before, 'pipewright added its rules on this host');
      for (const g of [a, b]) t.equal((await pw('detach', g)).exitCode, 0);
      t.same(await host.links(), linksBefore, 'no link left on the host (the bridge went with its last guest)');
      t.equal(await host.firewall(), before, 'its rule set exactly as before');
    });
  }
}

t.test('an existing bridge is kept, with the MTU it has', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const a = await netns(t);
  const br = uniq('br');
  await must('ip', ['link', 'add', br, 'mtu', '1400', 'type', 'bridge']);
  removeLinkAtEnd(t, br);
  const r = await cli(dir, ['attach', br, a, '10.232.0.2/24', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).mtu, 1400);
  const mtu = JSON.parse((await inNs(a, ['ip', '-j', 'link', 'show', 'eth0'])).stdout)[0].mtu;
  t.equal(mtu, 1400, 'guest MTU follows the bridge');
  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.ok((await hostLinks()).includes(br), 'a bridge pipewright did not create stays');
});

t.test('a new MAC for a reused address is announced (gratuitous ARP)', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b] = [await netns(t), await netns(t)];
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  t.equal((await cli(dir, ['attach', br, a, '10.233.9.2/24', '--mac', '02:aa:00:00:09:01'])).exitCode, 0);
  t.equal((await cli(dir, ['attach', br, b, '10.233.9.3/24'])).exitCode, 0);
  t.ok(await ping(b, '10.233.9.2'), "b learns a's first MAC");
  t.match((await inNs(b, ['ip', 'neigh', 'show', '10.233.9.2'])).stdout, /02:aa:00:00:09:01/);
  // The kernel ignores an ARP that would change an entry updated less than locktime (1 s) ago.
  await new Promise((r) => setTimeout(r, 1100));
  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.equal((await cli(dir, ['attach', br, a, '10.233.9.2/24', '--mac', '02:aa:00:00:09:02'])).exitCode, 0);
  let neigh = '';
  for (let i = 0; i < 20 && !neigh.includes('02:aa:00:00:09:02'); i++) {
    await new Promise((r) => setTimeout(r, 50));
    neigh = (await inNs(b, ['ip', 'neigh', 'show', '10.233.9.2'])).stdout;
  }
  t.match(neigh, /02:aa:00:00:09:02/, 'b has the new MAC without asking (the attach announced it)');
  await cli(dir, ['detach', a]);
  await cli(dir, ['detach', b]);
});

t.test(
  '20 attaches at once to a bridge that does not exist yet, on a fresh state dir',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const br = uniq('C');
    removeLinkAtEnd(t, br);
    const linksBefore = await hostLinks();
    const guests = await Promise.all(Array.from({ length: 20 }, () => netns(t)));
    const results = await Promise.all(guests.map((g, i) => cli(dir, ['attach', br, g, `10.231.9.${i + 2}/24`])));
    t.same(
      results.filter((r) => r.exitCode !== 0).map((r) => r.stderr.trim()),
      [],
      'every attach succeeded (one made the bridge, the others joined it)',
    );
    const ports = JSON.parse(await must('ip', ['-j', 'link', 'show', 'master', br]));
    t.equal(ports.length, 20, 'twenty ports on the one bridge');
    t.equal(
      JSON.parse((await cli(dir, ['ls', '--json'])).stdout).filter((a: { status: string }) => a.status === 'ok').length,
      20,
    );
    const detached = await Promise.all(guests.map((g) => cli(dir, ['detach', g])));
    t.same(
      detached.filter((r) => r.exitCode !== 0).map((r) => r.stderr.trim()),
      [],
      'every detach succeeded',
    );
    t.same(await hostLinks(), linksBefore, 'the bridge went with the last guest, nothing else is left');
  },
);

t.test('an IPv6-only guest (no IPv4 address at all)', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b] = [await netns(t), await netns(t)];
  const br = uniq('6br');
  removeLinkAtEnd(t, br);
  for (const [g, addr] of [
    [a, 'fd32::2/64'],
    [b, 'fd32::3/64'],
  ]) {
    const r = await cli(dir, ['attach', br, g, addr]);
    t.equal(r.exitCode, 0, r.stderr);
  }
  t.equal(
    (await inNs(a, ['ping', '-6', '-c', '1', '-W', '2', 'fd32::3'])).exitCode,
    0,
    'they reach each other over IPv6',
  );
  for (const g of [a, b]) t.equal((await cli(dir, ['detach', g])).exitCode, 0);
});
