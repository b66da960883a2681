/**
 * The network driver's handlers, called as dockerd calls them, where they must refuse before the
 * host is touched: IDs that are not Docker's, options it does not know, a subnet of the wrong family, a gateway that is
 * not the operator pool's. Replays of deletes are no-ops. (The kernel side: integration/docker-plugin.)
 */
import t, { type Test } from 'tap';
import { Store } from '../../src/db/store.js';
import { SqliteLeaseBackend } from '../../src/db/ipam-backend.js';
import { Ipam } from '../../src/net/ipam/allocator.js';
import { networkDriver } from '../../src/daemon/network-driver.js';
import { listNetworks } from '../../src/db/networks.js';
import { silent } from '../../src/util/log.js';

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);
const v4 = (Pool: string, Gateway: string) => [{ AddressSpace: 'pipewright', Pool, Gateway }];

function driver(t: Test) {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  const ipam = new Ipam(new SqliteLeaseBackend(store), 'host-a');
  const ctx = { store, ipam, firewall: 'iptables' as const, docker: '/nonexistent.sock', log: silent };
  return { ctx, d: networkDriver(ctx).handlers };
}

t.test('CreateNetwork refuses what it cannot make, and changes nothing', async (t) => {
  const { ctx, d } = driver(t);
  const create = (body: object) =>
    Promise.resolve(d.CreateNetwork({ NetworkID: NET, IPv4Data: v4('10.40.0.0/24', '10.40.0.1/24'), ...body }));
  await t.rejects(create({ NetworkID: 'lan' }), /NetworkID must be Docker's 64-hex-digit ID/);
  const opts = (o: object) => create({ Options: { 'com.docker.network.generic': o } });
  await t.rejects(
    opts({ vlan: '7' }),
    /-o vlan: a pipewright bridge network takes the options bridge, masquerade, isolated, mtu/,
  );
  await t.rejects(
    opts({ parent: 'eth0', masquerade: 'true' }),
    /-o masquerade: a pipewright macvlan network takes the options parent, macvlan_mode, host_shim, vlan, mtu/,
  );
  await t.rejects(
    opts({ parent: 'eth0', ipvlan_mode: 'l2' }),
    /-o ipvlan_mode: Docker sets a MAC of its own on each endpoint, which an ipvlan cannot take/,
  );
  await t.rejects(opts({ parent: 'eth0', vlan: '4095' }), /VLAN id "4095" must be a whole number from 1 to 4094/);
  await t.rejects(
    opts({ parent: 'nosuch0.4095' }),
    /VLAN id "4095"/,
    "Docker's spelling parent=<nic>.<id> is read as a VLAN",
  );
  await t.rejects(
    opts({ parent: 'nosuch0', vlan: '10' }),
    /parent nosuch0 must be an existing Ethernet interface \(not a bridge\) for a macvlan network/,
  );
  await t.rejects(
    opts({ parent: 'nosuch0' }),
    /parent nosuch0 must be an existing Ethernet interface \(not a bridge\) for a macvlan network/,
  );
  await t.rejects(
    opts({ bridge: 'none' }),
    /none is attach's word for a dummy \(no host interface\); name the bridge or parent otherwise/,
  );
  await t.rejects(opts({ parent: 'none' }), /none is attach's word for a dummy/);
  await t.rejects(
    opts({ parent: 'eth0', macvlan_mode: 'loud' }),
    /macvlan mode "loud" must be one of bridge, private, vepa, passthru/,
  );
  await t.rejects(opts({ mtu: '9k' }), /MTU "9k" must be a whole number from 68 to 65535/);
  await t.rejects(opts({ rate: '10xbit' }), /ingress rate "10xbit" must be a number with one of tc's units/);
  await t.rejects(opts({ rate: '-/-' }), /rate "-\/-" limits neither direction/);
  await t.rejects(opts({ parent: 'eth0', rate: '1mbit' }), /-o rate: a pipewright macvlan network takes the options/);
  await t.rejects(opts({ parent: '../x' }), /parent/);
  await t.rejects(
    create({ Options: { 'com.docker.network.generic': { masquerade: 'yes' } } }),
    /-o masquerade=yes: must be true or false/,
  );
  await t.rejects(
    create({ IPv6Data: v4('10.40.1.0/24', '10.40.1.1/24') }),
    /Docker gave 10\.40\.1\.0\/24 as the network's IPv6 subnet/,
  );
  await t.rejects(create({ IPv4Data: [] }), /Docker gave the network no IPv4 subnet/);
  await ctx.ipam.createPool({ name: 'ops', cidr: '10.41.0.0/24' });
  await t.rejects(
    create({ IPv4Data: v4('10.41.0.0/24', '10.41.0.9/24') }),
    /pool ops's gateway is 10\.41\.0\.1; create the network with --gateway 10\.41\.0\.1/,
  );
  t.same(listNetworks(ctx.store), [], 'no network recorded');
  t.same(
    (await ctx.ipam.listPools()).map((p) => p.name),
    ['ops'],
    'no pool made',
  );
});

t.test('endpoint calls name what is missing; deletes and revokes of what is gone are no-ops', async (t) => {
  const { d } = driver(t);
  await t.rejects(
    Promise.resolve(d.Join({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x' })),
    /no endpoint bbbbbbbbbbbb on network aaaaaaaaaaaa/,
  );
  await t.rejects(
    Promise.resolve(d.CreateEndpoint({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.40.0.2/24' } })),
    /no pipewright network docker-aaaaaaaaaaaa/,
  );
  await t.rejects(
    Promise.resolve(d.DeleteEndpoint({ NetworkID: NET, EndpointID: '../x' })),
    /EndpointID must be Docker's 64-hex-digit ID/,
  );
  t.same(await d.DeleteEndpoint({ NetworkID: NET, EndpointID: EP }), {});
  t.same(await d.RevokeExternalConnectivity({ NetworkID: NET, EndpointID: EP }), {});
  t.same(await d.DeleteNetwork({ NetworkID: NET }), {});
  t.same(await d.EndpointOperInfo({ NetworkID: NET, EndpointID: EP }), {
    Value: { 'com.docker.network.portmap': [], 'com.docker.network.exposedports': [] },
  });
  t.same(await d.GetCapabilities({}), { Scope: 'local', ConnectivityScope: 'local' });
});

t.test("Docker's port bindings pass -p's checks before anything is recorded (audit #18)", async (t) => {
  const { ctx, d } = driver(t);
  const program = (binding: object) =>
    Promise.resolve(
      d.ProgramExternalConnectivity({
        NetworkID: NET,
        EndpointID: EP,
        Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 8080, ...binding }] },
      }),
    );
  for (const [binding, why] of [
    [{ HostIP: '1.2.3.4\n-A INPUT -j ACCEPT' }, /the host address must be IPv4/],
    [{ HostIP: '1.2.3.4 } ; flush ruleset ; {' }, /the host address must be IPv4/],
    [{ HostIP: '::1] ; flush ruleset ; [' }, /is not an IPv6 address/],
    [{ HostIP: '::1' }, /\[::1\] cannot be published/],
    [{ Port: 'NaN' }, /container port "NaN" must be a port \(1-65535\)/],
    [{ Port: 70000 }, /container port "70000" must be a port/],
    [{ HostPort: 70000 }, /host ports must be 0-65535/],
    [{ HostPort: 'NaN', HostPortEnd: 0 }, /host ports must be 0-65535/],
  ] as const) {
    const err = await program(binding).then(
      () => null,
      (e: Error) => e.message,
    );
    t.match(err, /^Docker's port binding \{.*\} is refused: /, `${JSON.stringify(binding)} refused`);
    t.match(err, why);
    t.notOk(err?.includes('\n'), 'in one line');
  }
  t.same(ctx.store.db.prepare('SELECT * FROM ports').all(), [], 'no port recorded (nothing for the firewall to write)');
});
