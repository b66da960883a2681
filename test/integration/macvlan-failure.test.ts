/**
 * macvlan children of one parent reach each other; a step that fails mid-attach leaves nothing
 * behind (no link, no record, no bridge, no rule); input errors change nothing at all.
 */
import t from 'tap';
import {
  cli,
  firewallSnapshot,
  hostLinks,
  inNs,
  isRoot,
  must,
  netns,
  nicPair,
  ping,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  stateDir,
  uniq,
} from '../helpers/host.js';

t.test('macvlan children of one parent reach each other', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b] = [await netns(t), await netns(t)];
  const parent = await nicPair(t, 'p');

  const ra = await cli(dir, [
    'attach',
    parent,
    a,
    '10.233.0.2/24',
    '--mac',
    '02:aa:00:00:00:02',
    '--host-shim',
    '10.233.0.254/24',
    '--json',
  ]);
  t.equal(ra.exitCode, 0, ra.stderr);
  t.equal(JSON.parse(ra.stdout).kind, 'macvlan');
  t.equal(
    (await cli(dir, ['attach', parent, b, '10.233.0.3/24', '-i', 'lan0', '--macvlan-mode', 'bridge'])).exitCode,
    0,
  );
  const link = JSON.parse((await inNs(a, ['ip', '-j', '-d', 'link', 'show', 'eth0'])).stdout)[0];
  t.equal(link.linkinfo.info_kind, 'macvlan');
  t.equal(link.linkinfo.info_data.mode, 'bridge');
  t.equal(link.address, '02:aa:00:00:00:02');
  t.ok(await ping(a, '10.233.0.3'), 'macvlan a -> b');
  const { shimName } = await import('../../src/model/host-names.js');
  const shim = shimName(parent);
  removeLinkAtEnd(t, shim);
  t.match(await must('ip', ['-o', 'addr', 'show', 'dev', shim]), /10\.233\.0\.254\/24/, 'host shim holds its address');
  t.equal(
    (await sh('ping', ['-c', '1', '-W', '2', '10.233.0.3'])).exitCode,
    0,
    'the host reaches a macvlan guest through the shim',
  );
  const onBridge = await cli(dir, [
    'attach',
    uniq('br'),
    await netns(t),
    '10.240.0.2/24',
    '--host-shim',
    '10.240.0.1/24',
  ]);
  t.equal(onBridge.exitCode, 2, '--host-shim on a bridge is a usage error');

  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.equal((await cli(dir, ['detach', b, '-i', 'lan0'])).exitCode, 0);
  t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'macvlan gone from the guest');
  t.ok((await hostLinks()).includes(parent), 'the parent NIC is untouched');
  t.notOk((await hostLinks()).includes(shim), 'the shim went with the last guest');
});

t.test('a failure mid-attach rolls back everything', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const a = await netns(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  const fw = await firewallSnapshot();
  const links = await hostLinks();
  // The route's gateway is not on any attached subnet: the kernel refuses it in the last step.
  const r = await cli(dir, ['attach', br, a, '10.234.0.2/24', '--route', '10.99.0.0/16@10.250.0.1']);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /^pipewright: configure eth0 in .* failed: /);
  t.same(await hostLinks(), links, 'no bridge, no veth left on the host');
  t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'no interface left in the guest');
  t.equal(await firewallSnapshot(), fw, 'no rule left');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), [], 'nothing recorded');
});

t.test('bad input is refused before the host is touched', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const a = await netns(t);
  const links = await hostLinks();
  const cases: [string[], RegExp, number][] = [
    [['attach', 'br-name-way-too-long', a, '10.0.0.2/24'], /1 to 15 bytes/, 2],
    [['attach', uniq('br'), a, '10.0.0.2/24', '--mac', '01:00:5e:00:00:01'], /multicast/, 2],
    [['attach', uniq('br'), a, '10.0.0.2/24@10.1.0.1'], /outside the subnet/, 2],
    [['attach', uniq('br'), a, '10.0.0.2/24', '--mtu', '12'], /MTU/, 2],
    [['attach', uniq('br'), 'netns:no-such-ns', '10.0.0.2/24'], /no network namespace "no-such-ns"/, 1],
    [['attach', uniq('br'), 'pid:999999999', '10.0.0.2/24'], /no process 999999999/, 1],
    [['attach', uniq('br'), a, '10.0.0.2/24', '--bogus'], /unknown option/, 2],
  ];
  for (const [args, re, code] of cases) {
    const r = await cli(dir, args);
    t.equal(r.exitCode, code, args.join(' '));
    t.match(r.stderr, re);
  }
  t.same(await hostLinks(), links, 'nothing was created');
});

t.test('--direct-phys moves the NIC itself in, and back at detach', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b] = [await netns(t), await netns(t)];
  const nic = await nicPair(t, 'd');
  const mac = (await must('cat', [`/sys/class/net/${nic}/address`])).trim();
  const r = await cli(dir, ['attach', nic, a, '10.241.0.2/24', '--direct-phys', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).kind, 'phys');
  t.equal((await cli(dir, ['attach', `${nic}x`, b, '10.241.0.3/24', '--direct-phys'])).exitCode, 0);
  t.notOk((await hostLinks()).includes(nic), 'the NIC left the host');
  t.equal(
    JSON.parse((await inNs(a, ['ip', '-j', 'link', 'show', 'eth0'])).stdout)[0].address,
    mac,
    'it keeps its own MAC',
  );
  t.ok(await ping(a, '10.241.0.3'), 'traffic over the moved NICs');
  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.equal((await cli(dir, ['detach', b])).exitCode, 0);
  const links = await hostLinks();
  t.ok(links.includes(nic) && links.includes(`${nic}x`), 'both NICs are back under their own names');
});
