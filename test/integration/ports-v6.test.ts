/**
 * IPv6 published ports against the real kernel, for both firewall backends, on a stand-in host
 * (test/helpers/host.ts testHost) whose FORWARD policies drop in both families (Docker's, with
 * ip6tables on). A dual-stack network holds the server guest and a second guest; "another host"
 * is a client netns routed to the stand-in host over a veth. Traffic stays inside these
 * namespaces, their bridge and loopback.
 */
import t from 'tap';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  firewallNamesOf,
  askPeer,
  CNI_PLUGIN,
  isRoot,
  must,
  netns,
  peerServer,
  ROOT_REASON,
  routedClient,
  startDaemon,
  stateDir,
  testHost,
  until,
  UPLINK,
} from '../helpers/host.js';

const [NET4, NET6] = ['10.248.1', 'fd00:248:1:'];
const GW6 = `${NET6}:1`;
const { host4: UP4, host6: UP6, client4: CLIENT4, client6: CLIENT6 } = UPLINK;
for (const firewall of ['iptables', 'nftables'] as const) {
  t.test(`IPv6 published ports (${firewall})`, { skip: !isRoot && ROOT_REASON }, async (t) => {
    const host = await testHost(t, { dockerForwardDrop: true });
    await host.run('ip6tables', ['-P', 'FORWARD', 'DROP']);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
    const client = await routedClient(t, host.ns);
    const [before, links] = [await host.firewall(), await host.links()];
    const [srv, peer] = [await netns(t), await netns(t)];
    for (const args of [
      ['pool', 'create', 'p4', `${NET4}.0/24`],
      ['pool', 'create', 'p6', `${NET6}:/64`],
      ['network', 'create', 'dual', '--bridge', 'brd', '--pool', 'p4', '--pool6', 'p6'],
    ]) {
      const r = await pw(...args);
      t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
    }

    const withNetwork = await host.firewall();
    const loopback = await pw('attach', 'brd', srv, 'pool:p4', 'pool:p6', '-p', '[::1]:18080:8080');
    t.equal(loopback.exitCode, 2, '-p [::1]:… is refused as a usage error');
    t.equal(
      loopback.stderr.trim(),
      'pipewright: port "[::1]:18080:8080": [::1] cannot be published (IPv6 has no route_localnet); use 127.0.0.1',
    );
    t.equal(await host.firewall(), withNetwork, 'nothing changed');

    const attach = await pw(
      'attach',
      'brd',
      srv,
      'pool:p4',
      'pool:p6',
      '-p',
      '18080:8080',
      '-p',
      `[${UP6}]:18081:8080`,
      '-p',
      '15353:5353/udp',
      '--json',
    );
    t.equal(attach.exitCode, 0, attach.stderr);
    t.same(JSON.parse(attach.stdout).publish, ['18080:8080/tcp', `[${UP6}]:18081:8080/tcp`, '15353:5353/udp']);
    const table6 = async () => {
      const items = JSON.parse(
        await host.run('nft', ['-j', 'list', 'table', ...firewallNamesOf(dir).nft6.split(' ')]),
      ).nftables;
      const set = (name: string) => items.find((i: { map?: { name: string } }) => i.map?.name === name)?.map.elem ?? [];
      return { rules: items.filter((i: object) => 'rule' in i).length, dnat: set('dnat_any').length };
    };
    const one = firewall === 'nftables' ? await table6() : null;
    t.equal((await pw('attach', 'brd', peer, 'pool:p4', 'pool:p6', '-p', '18090:9000')).exitCode, 0);
    if (one) {
      // O(1) per port: another guest's port is one more map element, not one more rule.
      t.same(await table6(), { rules: one.rules, dnat: one.dnat + 1 }, 'a port is an element, no rule');
    }
    const [srv4, srv6, peer6] = [`${NET4}.2`, `${NET6}:2`, `${NET6}:3`];
    t.same(
      JSON.parse((await pw('ports', srv, '--json')).stdout).map((p: { publish: string; ctrIp: string }) => [
        p.publish,
        p.ctrIp,
      ]),
      [
        ['18080:8080/tcp', srv4],
        ['[::]:18080:8080/tcp', srv6],
        [`[${UP6}]:18081:8080/tcp`, srv6],
        ['15353:5353/udp', srv4],
        ['[::]:15353:5353/udp', srv6],
      ],
      'one row per family the guest has; the IPv6 address only on IPv6',
    );
    t.equal(
      (await host.run('sysctl', ['-n', 'net.ipv6.conf.all.forwarding'])).trim(),
      '1',
      'IPv6 forwarding on, as for IPv4 NAT',
    );

    if (firewall === 'nftables') {
      const map = async (name: string) =>
        host.run('nft', ['list', 'map', ...firewallNamesOf(dir).nft6.split(' '), name]);
      t.match(await map('dnat_any'), `tcp . 18080 : ${srv6} . 8080`);
      t.match(await map('dnat_any'), `udp . 15353 : ${srv6} . 5353`);
      t.match(await map('dnat_addr'), `${UP6} . tcp . 18081 : ${srv6} . 8080`);
    } else {
      const nat6 = await host.run('ip6tables-save', ['-t', 'nat']);
      t.match(
        nat6,
        `-A ${firewallNamesOf(dir).chains.dnat} -p tcp -m tcp --dport 18080 -j DNAT --to-destination [${srv6}]:8080`,
      );
      t.match(
        nat6,
        `-A ${firewallNamesOf(dir).chains.dnat} -d ${UP6}/128 -p tcp -m tcp --dport 18081 -j DNAT --to-destination [${srv6}]:8080`,
      );
      t.match(nat6, `-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j ${firewallNamesOf(dir).chains.dnat}`);
      t.match(
        await host.run('ip6tables-save', ['-t', 'filter']),
        `-A ${firewallNamesOf(dir).chains.forward} -d ${srv6}/128 ! -i brd -o brd`,
      );
    }

    await peerServer(t, srv, 'tcp', 8080, '::');
    await peerServer(t, srv, 'udp', 5353, '::');
    t.equal(await askPeer(client, 'tcp', UP6, 18080), CLIENT6, 'TCP over IPv6 from another host: the guest sees it');
    t.equal(await askPeer(client, 'udp', UP6, 15353), CLIENT6, 'UDP over IPv6 from another host');
    t.equal(await askPeer(client, 'tcp', UP4, 18080), CLIENT4, 'the same -p over IPv4');
    t.equal(await askPeer(client, 'tcp', GW6, 18080), CLIENT6, 'any host address: the bridge gateway too');
    t.equal(await askPeer(client, 'tcp', UP6, 18081), CLIENT6, '[addr]:port on its address');
    t.equal(await askPeer(client, 'tcp', GW6, 18081), 'error ECONNREFUSED', '[addr]:port on no other address');
    t.equal(await askPeer(client, 'tcp', UP4, 18081), 'error ECONNREFUSED', '[addr]:port not on IPv4');
    t.equal(await askPeer(host.ns, 'tcp', UP6, 18080), UP6, 'TCP over IPv6 from the host itself');
    t.equal(await askPeer(host.ns, 'tcp', '::1', 18080), 'error ECONNREFUSED', '::1 is never DNATed: refused at once');
    t.equal(await askPeer(peer, 'tcp', UP6, 18080), GW6, 'hairpin: a guest of the same bridge, through the host');
    t.equal(await askPeer(srv, 'tcp', UP6, 18080), GW6, 'hairpin: the guest reaches its own port');
    await peerServer(t, peer, 'tcp', 9000, '::');
    t.equal(await askPeer(srv, 'tcp', peer6, 9000), srv6, 'guests of the bridge talk directly, not NATed');
    t.equal(await askPeer(srv, 'tcp', `${NET4}.3`, 9000), srv4, 'over IPv4 too');

    const taken = await pw('attach', 'brd', await netns(t), 'pool:p4', 'pool:p6', '-p', '[::]:18080:80');
    t.equal(taken.exitCode, 1);
    t.match(taken.stderr, `host port [::]:18080/tcp is already published by ${srv} ([::]:18080:8080/tcp)`);

    const again = await pw('firewall', 'sync', '--verbose');
    t.equal(again.exitCode, 0, again.stderr);
    t.notMatch(again.stderr, firewall === 'iptables' ? /restore/ : /element/, 'sync when in sync writes no rule');
    t.equal(await askPeer(client, 'tcp', UP6, 18080), CLIENT6, 'still served after sync');

    t.equal((await pw('detach', srv)).exitCode, 0);
    if (firewall === 'nftables') {
      const elems = await host.run('nft', ['list', 'table', ...firewallNamesOf(dir).nft6.split(' ')]);
      t.notMatch(elems, srv6, 'no element of the detached guest is left');
    } else {
      t.notMatch(await host.run('ip6tables-save', []), srv6, 'no rule of the detached guest is left');
    }
    t.equal((await pw('detach', peer)).exitCode, 0);
    t.equal((await pw('network', 'rm', 'dual')).exitCode, 0);
    t.equal(await host.firewall(), before, 'the whole rule set is exactly as before');
    t.same(await host.links(), links, 'bridge gone');
  });
}

/**
 * A plugin call as dockerd makes it, from the daemon's own namespaces (it refuses callers from
 * others): a node client entered into them.
 */
async function post(daemonPid: number, socketPath: string, method: string, body: object) {
  const client = `const r = require('node:http').request({ socketPath: ${JSON.stringify(socketPath)}, path: '/${method}', method: 'POST' },
    (res) => { let s = ''; res.on('data', (d) => (s += d)); res.on('end', () => process.stdout.write(s)); });
  r.end(process.argv[1]);`;
  const out = await must('nsenter', [
    '-t',
    String(daemonPid),
    '-n',
    '-m',
    process.execPath,
    '-e',
    client,
    JSON.stringify(body),
  ]);
  return JSON.parse(out) as Record<string, unknown>;
}

for (const firewall of ['nftables', 'iptables'] as const)
  t.test(
    `Docker's bindings: one per family, an IPv6 address, none for a family the endpoint lacks (${firewall})`,
    { skip: !isRoot && ROOT_REASON },
    async (t) => {
      const host = await testHost(t);
      const dir = stateDir(t);
      const socket = join(dir, 'plugin.sock');
      // No ip6 filter table here: ip6tables' writes are nat hooks only, each its built-in chain's first.
      const env = { PIPEWRIGHT_FIREWALL: firewall, DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` };
      const { proc } = await startDaemon(t, dir, ['--socket', socket, '--cni-socket', ''], env, host.ns);
      const call = (method: string, body: object) => post(proc.pid!, socket, `NetworkDriver.${method}`, body);
      const before = await host.firewall();
      const NetworkID = randomBytes(32).toString('hex');
      const [dual, only4] = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')];
      t.same(
        await call('CreateNetwork', {
          NetworkID,
          IPv4Data: [{ AddressSpace: 'x', Pool: '10.248.3.0/24', Gateway: '10.248.3.1/24' }],
          IPv6Data: [{ AddressSpace: 'x', Pool: 'fd00:248:3::/64', Gateway: 'fd00:248:3::1/64' }],
          Options: { 'com.docker.network.generic': { bridge: 'brk' } },
        }),
        {},
      );
      for (const [EndpointID, Interface] of [
        [dual, { Address: '10.248.3.2/24', AddressIPv6: 'fd00:248:3::2/64' }],
        [only4, { Address: '10.248.3.3/24' }],
      ] as const)
        t.match(await call('CreateEndpoint', { NetworkID, EndpointID, Interface }), { Interface: {} });
      const program = (EndpointID: string, bindings: object[]) =>
        call('ProgramExternalConnectivity', {
          NetworkID,
          EndpointID,
          Options: { 'com.docker.network.portmap': bindings.map((b) => ({ Proto: 6, Port: 80, ...b })) },
        });
      const both = [
        { HostIP: '0.0.0.0', HostPort: 18096 },
        { HostIP: '::', HostPort: 18096 },
      ];
      t.same(await program(dual, [...both, { HostIP: 'fd00:248:3::1', HostPort: 18097, Port: 81 }]), {});
      t.same(
        await program(
          only4,
          both.map((b) => ({ ...b, HostPort: 18098 })),
        ),
        {},
      );
      const ports = JSON.parse((await host.cli(dir, ['ports', '--json'], env)).stdout);
      t.same(
        ports.map((p: { publish: string; ctrIp: string }) => `${p.publish} ${p.ctrIp}`),
        [
          '18096:80/tcp 10.248.3.2',
          '[::]:18096:80/tcp fd00:248:3::2',
          '[fd00:248:3::1]:18097:81/tcp fd00:248:3::2',
          '18098:80/tcp 10.248.3.3',
        ],
        ':: on an endpoint without IPv6 maps nothing',
      );
      const six = async () =>
        firewall === 'nftables'
          ? host.run('nft', ['list', 'table', ...firewallNamesOf(dir).nft6.split(' ')])
          : host.run('ip6tables-save', ['-t', 'nat']);
      const table6 = await six();
      t.match(
        table6,
        firewall === 'nftables'
          ? 'tcp . 18096 : fd00:248:3::2 . 80'
          : '--dport 18096 -j DNAT --to-destination [fd00:248:3::2]:80',
      );
      t.match(
        table6,
        firewall === 'nftables'
          ? 'fd00:248:3::1 . tcp . 18097 : fd00:248:3::2 . 81'
          : '-d fd00:248:3::1/128 -p tcp -m tcp --dport 18097 -j DNAT --to-destination [fd00:248:3::2]:81',
      );
      t.notMatch(table6, '18098');
      const info = (await call('EndpointOperInfo', { NetworkID, EndpointID: dual })) as {
        Value: Record<string, { HostIP: string; HostPort: number }[]>;
      };
      t.same(
        info.Value['com.docker.network.portmap'].map((b) => `${b.HostIP} ${b.HostPort}`),
        ['0.0.0.0 18096', ':: 18096', 'fd00:248:3::1 18097'],
      );
      t.same(await call('RevokeExternalConnectivity', { NetworkID, EndpointID: dual }), {});
      t.notMatch(await six(), 'fd00:248:3::2', 'revoked: no element or rule left');
      for (const EndpointID of [dual, only4]) t.same(await call('DeleteEndpoint', { NetworkID, EndpointID }), {});
      t.ok((await until(async () => (await host.links()).every((l) => !l.startsWith('veth')), 3000)) >= 0);
      t.same(await call('DeleteNetwork', { NetworkID }), {});
      t.equal(await host.firewall(), before, 'the whole rule set is exactly as before');
    },
  );

t.test(
  'CNI portMappings: a host address of the family the network lacks maps nothing, as portmap',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    const dir = stateDir(t);
    const client = await routedClient(t, host.ns);
    const before = await host.firewall();
    t.equal((await host.cli(dir, ['pool', 'create', 'pc', '10.248.5.0/24'])).exitCode, 0);
    const guest = await netns(t);
    const conf = {
      cniVersion: '1.1.0',
      name: 'cnet',
      type: 'pipewright',
      bridge: 'brc',
      pool: 'pc',
      stateDir: dir,
      runtimeConfig: {
        portMappings: [
          { hostPort: 18110, containerPort: 8080, protocol: 'tcp', hostIP: '::' },
          { hostPort: 18110, containerPort: 8080, protocol: 'tcp', hostIP: '0.0.0.0' },
          { hostPort: 18111, containerPort: 8080, protocol: 'tcp', hostIP: '2001:db8::1' },
        ],
      },
    };
    const plugin = (command: string) =>
      execa('ip', ['netns', 'exec', host.ns, CNI_PLUGIN], {
        input: JSON.stringify(conf),
        env: {
          CNI_COMMAND: command,
          CNI_CONTAINERID: 'ctr-v6',
          CNI_NETNS: `/run/netns/${guest}`,
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/usr/lib/cni',
          PIPEWRIGHT_CNI_SOCKET: join(dir, 'no-daemon.sock'),
        },
        reject: false,
      });
    const add = await plugin('ADD');
    t.equal(add.exitCode, 0, add.stdout);
    t.same(
      JSON.parse((await host.cli(dir, ['ports', '--json'])).stdout).map((p: { publish: string }) => p.publish),
      ['18110:8080/tcp'],
      'the IPv4 mapping only',
    );
    t.equal((await plugin('CHECK')).exitCode, 0, 'CHECK counts the rows the mappings make');
    await peerServer(t, guest, 'tcp', 8080);
    t.equal(await askPeer(client, 'tcp', UP4, 18110), CLIENT4, 'published, from another host');
    t.equal((await plugin('ADD')).exitCode, 0, 'ADD again: the same');
    conf.runtimeConfig.portMappings.push({ hostPort: 18112, containerPort: 80, protocol: 'tcp', hostIP: '[::1]' });
    t.match(JSON.parse((await plugin('ADD')).stdout), { code: 7 }, 'a malformed hostIP: an error, not a rule');
    t.equal((await plugin('DEL')).exitCode, 0);
    t.equal((await host.cli(dir, ['network', 'rm', 'cnet'])).exitCode, 0);
    t.equal(await host.firewall(), before, 'the whole rule set is exactly as before');
  },
);
