/**
 * NAT and published ports against the real kernel, for both firewall backends, on a stand-in host
 * in Docker's conditions (FORWARD DROP, br_netfilter; test/helpers/host.ts testHost). Two
 * pipewright networks: "a" (masquerade) holds the server guest, "b" holds a client guest and a
 * "remote" host. Traffic stays inside these namespaces, their bridges and loopback.
 */
import t from 'tap';
import { createServer } from 'node:net';
import {
  firewallNamesOf,
  askPeer,
  cli,
  firewallSnapshot,
  hostLinks,
  isRoot,
  must,
  netns,
  peerServer,
  ROOT_REASON,
  routedClient,
  sh,
  stateDir,
  testHost,
  uniq,
  UPLINK,
} from '../helpers/host.js';

for (const firewall of ['iptables', 'nftables'] as const) {
  t.test(`published ports and masquerade (${firewall})`, { skip: !isRoot && ROOT_REASON }, async (t) => {
    const host = await testHost(t, { dockerForwardDrop: true });
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
    const [before, links] = [await host.firewall(), await host.links()];
    const [brA, brB] = ['bra', 'brb']; // the stand-in host's own names
    const [srv, client, remote] = [await netns(t), await netns(t), await netns(t)];
    for (const args of [
      ['pool', 'create', 'pa', '10.247.1.0/24'],
      ['pool', 'create', 'pb', '10.247.2.0/24'],
      ['network', 'create', 'na', '--bridge', brA, '--pool', 'pa', '--masquerade'],
      ['network', 'create', 'nb', '--bridge', brB, '--pool', 'pb'],
    ]) {
      const r = await pw(...args);
      t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
    }
    const attach = await pw('attach', brA, srv, 'pool:pa', '-p', '18080:8080', '-p', '15353:5353/udp', '--json');
    t.equal(attach.exitCode, 0, attach.stderr);
    t.same(JSON.parse(attach.stdout).publish, ['18080:8080/tcp', '15353:5353/udp']);
    t.equal((await pw('attach', brB, client, 'pool:pb')).exitCode, 0);
    t.equal((await pw('attach', brB, remote, 'pool:pb')).exitCode, 0);
    const [hostA, hostB] = ['10.247.1.1', '10.247.2.1'];
    const [srvIp, remoteIp] = ['10.247.1.2', '10.247.2.3'];

    await peerServer(t, srv, 'tcp', 8080);
    await peerServer(t, srv, 'udp', 5353);
    t.equal(
      await askPeer(client, 'tcp', hostB, 18080),
      '10.247.2.2',
      'TCP from another host (netns on another bridge)',
    );
    t.equal(await askPeer(client, 'udp', hostB, 15353), '10.247.2.2', 'UDP from another host');
    t.equal(await askPeer(host.ns, 'tcp', hostA, 18080), hostA, 'TCP from the host itself');
    t.equal(await askPeer(host.ns, 'tcp', '127.0.0.1', 18080), hostA, 'TCP to 127.0.0.1 (route_localnet)');
    t.equal(await askPeer(host.ns, 'udp', '127.0.0.1', 15353), hostA, 'UDP to 127.0.0.1');
    t.equal(
      await askPeer(srv, 'tcp', hostA, 18080),
      hostA,
      'hairpin: the guest reaches its own published port through the host',
    );

    await peerServer(t, remote, 'tcp', 9000);
    t.equal(
      await askPeer(srv, 'tcp', remoteIp, 9000),
      hostB,
      'egress is masqueraded: the remote sees the host, not the guest',
    );
    t.equal(
      await askPeer(client, 'tcp', srvIp, 8080),
      '10.247.2.2',
      'no masquerade into a network: the guest sees the real client',
    );

    const taken = await pw('attach', brB, await netns(t), 'pool:pb', '-p', '18080:80');
    t.equal(taken.exitCode, 1);
    t.match(taken.stderr, new RegExp(`host port 18080/tcp is already published by ${srv} \\(18080:8080/tcp\\)`));
    const ports = JSON.parse((await pw('ports', '--json')).stdout);
    t.same(
      ports.map((p: { publish: string }) => p.publish),
      ['18080:8080/tcp', '15353:5353/udp'],
    );

    const again = await pw('firewall', 'sync', '--verbose');
    t.equal(again.exitCode, 0, again.stderr);
    if (firewall === 'iptables') t.notMatch(again.stderr, /restore/, 'sync when in sync writes nothing');
    t.equal(await askPeer(client, 'tcp', hostB, 18080), '10.247.2.2', 'still served after sync');

    for (const g of [srv, client, remote]) t.equal((await pw('detach', g)).exitCode, 0);
    for (const n of ['na', 'nb']) t.equal((await pw('network', 'rm', n)).exitCode, 0);
    t.equal(await host.firewall(), before, 'the whole rule set is exactly as before');
    t.same(await host.links(), links, 'bridges gone');
  });
}

t.test('firewall sync restores rules a reload wiped', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const pw = (...args: string[]) => cli(dir, ['--firewall', 'iptables', ...args]);
  const br = uniq('a');
  t.teardown(() => sh('ip', ['link', 'del', br]));
  const srv = await netns(t);
  await pw('pool', 'create', 'p', '10.247.3.0/24');
  await pw('network', 'create', 'n', '--bridge', br, '--pool', 'p');
  t.equal((await pw('attach', br, srv, 'pool:p', '-p', '18081:8080')).exitCode, 0);
  const { dnat } = firewallNamesOf(dir).chains;
  const rules = await must('iptables', ['-t', 'nat', '-S', dnat]);
  await must('iptables', ['-t', 'nat', '-F', dnat]); // what a reload does to our rules
  t.equal((await pw('firewall', 'sync')).exitCode, 0);
  t.equal(await must('iptables', ['-t', 'nat', '-S', dnat]), rules, 'rules are back');
  await pw('detach', srv);
  await pw('network', 'rm', 'n');
});

t.test(
  "a reboot took a network's bridge: the next guest's attach makes it again, its gateway on it",
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const br = uniq('g');
    t.teardown(() => sh('ip', ['link', 'del', br]));
    const guest = await netns(t);
    await cli(dir, ['pool', 'create', 'p', '10.247.4.0/24']);
    t.equal((await cli(dir, ['network', 'create', 'n', '--bridge', br, '--pool', 'p'])).exitCode, 0);
    await must('ip', ['link', 'del', br]); // what a reboot does to it
    const r = await cli(dir, ['attach', br, guest, 'pool:p']);
    t.equal(r.exitCode, 0, r.stderr);
    t.match(
      await must('ip', ['-4', '-o', 'address', 'show', br]),
      /inet 10\.247\.4\.1\/24/,
      'the bridge is back with the gateway',
    );
    t.equal(
      (await sh('ip', ['netns', 'exec', guest, 'ping', '-c', '1', '-W', '2', '10.247.4.1'])).exitCode,
      0,
      'the guest reaches its gateway',
    );
    t.equal((await cli(dir, ['detach', guest])).exitCode, 0);
    t.equal((await cli(dir, ['network', 'rm', 'n'])).exitCode, 0);
    t.equal((await sh('ip', ['link', 'show', br])).exitCode, 1, 'the bridge goes with the network');
  },
);

t.test(
  '-p on a bridge the host cannot route to is refused before anything changes',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const br = uniq('r');
    t.teardown(() => sh('ip', ['link', 'del', br]));
    const guest = await netns(t);
    const links = await hostLinks();
    const fw = await firewallSnapshot();
    await cli(dir, ['pool', 'create', 'lan', '10.247.30.0/24']);
    const r = await cli(dir, ['attach', br, guest, 'pool:lan', '-p', '18130:80']);
    t.equal(r.exitCode, 1);
    t.match(r.stderr, /-p needs the host to reach the guest.*network create/);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.same(await hostLinks(), links, 'no bridge, no veth');
    t.same(JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout), [], 'no lease');
    t.equal(await firewallSnapshot(), fw, 'no rule');
    // Once the host holds an address in the subnet, the same attach goes through.
    await must('ip', ['link', 'add', br, 'type', 'bridge']);
    await must('ip', ['address', 'add', '10.247.30.1/24', 'dev', br]);
    await must('ip', ['link', 'set', br, 'up']);
    const ok = await cli(dir, ['attach', br, guest, 'pool:lan', '-p', '18130:80']);
    t.equal(ok.exitCode, 0, ok.stderr);
    t.equal((await cli(dir, ['detach', guest])).exitCode, 0);
  },
);

for (const firewall of ['iptables', 'nftables'] as const) {
  t.test(
    `a guest cannot reach the host's 127.0.0.1 through its gateway (${firewall})`,
    { skip: !isRoot && ROOT_REASON },
    async (t) => {
      const dir = stateDir(t);
      const pw = (...args: string[]) => cli(dir, ['--firewall', firewall, ...args]);
      const before = await firewallSnapshot();
      const br = uniq('l');
      t.teardown(() => sh('ip', ['link', 'del', br]));
      const g = await netns(t);
      await pw('pool', 'create', 'lp', '10.247.40.0/24');
      t.equal((await pw('network', 'create', 'ln', '--bridge', br, '--pool', 'lp')).exitCode, 0);
      const r = await pw('attach', br, g, 'pool:lp', '-p', '18140:8080');
      t.equal(r.exitCode, 0, r.stderr);
      await peerServer(t, g, 'tcp', 8080);
      // A host service that listens on loopback only.
      const server = createServer((s) => s.end('host-secret\n')).listen(18141, '127.0.0.1');
      t.teardown(() => void server.close());
      // The guest (root in its namespace) routes 127.0.0.1 through its gateway.
      await must('ip', [
        'netns',
        'exec',
        g,
        'sysctl',
        '-qw',
        'net.ipv4.conf.all.route_localnet=1',
        'net.ipv4.conf.eth0.route_localnet=1',
      ]);
      await must('ip', ['-n', g, 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local']);
      await must('ip', ['-n', g, 'route', 'add', '127.0.0.1/32', 'via', '10.247.40.1', 'dev', 'eth0']);
      t.notMatch(
        await askPeer(g, 'tcp', '127.0.0.1', 18141),
        /host-secret/,
        "the host's loopback service does not answer the guest",
      );
      t.equal(
        await askPeer(null, 'tcp', '127.0.0.1', 18140),
        '10.247.40.1',
        "the host's own 127.0.0.1:<published> still answers",
      );
      t.equal((await pw('detach', g)).exitCode, 0);
      t.equal((await pw('network', 'rm', 'ln')).exitCode, 0);
      // With iptables-nft, the guard's hook may have created filter INPUT: it went again with the hook.
      t.equal(
        await firewallSnapshot(),
        before,
        'the guard went with the last published port, and any chain made for it',
      );
    },
  );
}

t.test(
  'iptables: a filter INPUT chain that existed before the guard is left as it was',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    // Made first, as another program would, with a rule of its own.
    await host.run('iptables', [
      '-w',
      '-A',
      'INPUT',
      '-i',
      'lo',
      '-m',
      'comment',
      '--comment',
      'not-pipewright',
      '-j',
      'ACCEPT',
    ]);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', 'iptables', ...args]);
    const before = await host.firewall();
    const g = await netns(t);
    await pw('pool', 'create', 'kp', '10.247.41.0/24');
    t.equal((await pw('network', 'create', 'kn', '--bridge', 'brk', '--pool', 'kp')).exitCode, 0);
    t.equal((await pw('attach', 'brk', g, 'pool:kp', '-p', '18142:8080')).exitCode, 0);
    t.match(
      (await host.run('iptables', ['-w', '-S', 'INPUT'])).split('\n')[1],
      `-j ${firewallNamesOf(dir).chains.input}`,
      'the guard is hooked first',
    );
    t.equal((await pw('detach', g)).exitCode, 0);
    t.equal((await pw('network', 'rm', 'kn')).exitCode, 0);
    t.equal(await host.firewall(), before, 'INPUT is still there, with its own rule');
  },
);

for (const firewall of ['iptables', 'nftables'] as const) {
  t.test(
    `a network without masquerade where FORWARD drops: its ports answer another host, its guests talk un-NATed (${firewall})`,
    { skip: !isRoot && ROOT_REASON },
    async (t) => {
      const host = await testHost(t, { dockerForwardDrop: true });
      const dir = stateDir(t);
      const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
      const client = await routedClient(t, host.ns);
      const before = await host.firewall();
      const [srv, peer] = [await netns(t), await netns(t)];
      for (const args of [
        ['pool', 'create', 'rp', '10.247.31.0/24'],
        ['network', 'create', 'rn', '--bridge', 'brr', '--pool', 'rp'],
        ['attach', 'brr', srv, 'pool:rp', '-p', '18120:8080'],
        ['attach', 'brr', peer, 'pool:rp', '-p', '18121:9000'],
      ]) {
        const r = await pw(...args);
        t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
      }
      await peerServer(t, srv, 'tcp', 8080);
      await peerServer(t, peer, 'tcp', 9000);
      t.equal(await askPeer(client, 'tcp', UPLINK.host4, 18120), UPLINK.client4, 'the reply leaves the bridge');
      t.equal(await askPeer(srv, 'tcp', '10.247.31.3', 9000), '10.247.31.2', 'guest to guest: no hairpin NAT');
      t.equal(await askPeer(srv, 'tcp', UPLINK.host4, 18121), '10.247.31.1', 'through the host: hairpin NAT');
      for (const g of [srv, peer]) t.equal((await pw('detach', g)).exitCode, 0);
      t.equal((await pw('network', 'rm', 'rn')).exitCode, 0);
      t.equal(await host.firewall(), before, 'the whole rule set is exactly as before');
    },
  );
}
