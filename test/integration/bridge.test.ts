/**
 * Two guests on one pipewright bridge, through the real CLI and kernel: they reach each other over
 * IPv4, IPv6 and TCP, also while Docker's FORWARD DROP policy is in force; attach is idempotent,
 * conflicts are refused, and detach leaves the host (links, rule set) exactly as it was.
 */
import t from 'tap';
import { execa } from 'execa';
import { cli, dockerUp, firewallSnapshot, hostLinks, inNs, isRoot, must, netns, ping, removeLinkAtEnd, ROOT_REASON, stateDir, uniq } from '../helpers/host.js';

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

  if (await dockerUp()) {
    t.match(await must('iptables', ['-S', 'FORWARD']), /-P FORWARD DROP/, 'dockerd runs: FORWARD policy is DROP');
  }
  t.ok(await ping(a, '10.231.0.3'), 'IPv4 ping a -> b');
  t.ok(await ping(b, 'fd31::2'), 'IPv6 ping b -> a');

  const server = execa('ip', ['netns', 'exec', b, 'busybox', 'nc', '-l', '-p', '7777', '-e', 'cat'], { reject: false });
  t.teardown(() => {
    server.kill();
  });
  await new Promise((r) => setTimeout(r, 300));
  const echo = await execa('ip', ['netns', 'exec', a, 'busybox', 'nc', '-w', '2', '10.231.0.3', '7777'], { input: 'hello pipewright\n', reject: false });
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

t.test('20 attaches at once to a bridge that does not exist yet, on a fresh state dir', { skip: !isRoot && ROOT_REASON }, async (t) => {
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
  t.equal(JSON.parse((await cli(dir, ['ls', '--json'])).stdout).filter((a: { status: string }) => a.status === 'ok').length, 20);
  const detached = await Promise.all(guests.map((g) => cli(dir, ['detach', g])));
  t.same(
    detached.filter((r) => r.exitCode !== 0).map((r) => r.stderr.trim()),
    [],
    'every detach succeeded',
  );
  t.same(await hostLinks(), linksBefore, 'the bridge went with the last guest, nothing else is left');
});

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
  t.equal((await inNs(a, ['ping', '-6', '-c', '1', '-W', '2', 'fd32::3'])).exitCode, 0, 'they reach each other over IPv6');
  for (const g of [a, b]) t.equal((await cli(dir, ['detach', g])).exitCode, 0);
});
