/**
 * The netavark front end's reading of a call, before anything is touched: the network config and
 * the container's options checked, and turned into the CNI call that setup and teardown make.
 */
import t from 'tap';
import { create } from '../../src/netavark/commands.js';
import { asCniCall } from '../../src/netavark/network.js';
import { parseExec, parseNetwork, type NetavarkExec, type NetavarkNetwork } from '../../src/netavark/types.js';

const ID = '0123456789ab'.padEnd(64, 'f');
const net = (over: Partial<NetavarkNetwork> = {}): NetavarkNetwork => ({
  name: 'web',
  id: ID,
  driver: 'pipewright',
  subnets: [{ subnet: '10.89.7.0/24', gateway: '10.89.7.1' }],
  options: {},
  ...over,
});
const exec = (over: Partial<NetavarkExec> = {}, network = net()): NetavarkExec => ({
  container_id: 'c'.repeat(64),
  container_name: 'c',
  network,
  network_options: { interface_name: 'eth0' },
  ...over,
});
const message = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
};

t.test('create: checked and completed, IPAM left to the pool', async (t) => {
  const made = create(net());
  t.equal(made.network_interface, 'pw0123456789ab');
  t.same(made.ipam_options, { driver: 'none' });
  t.equal(made.dns_enabled, false);
  t.equal(create(net({ options: { bridge: 'br7' } })).network_interface, 'br7');
  t.equal(create(net({ network_interface: 'podbr1' })).network_interface, 'podbr1');
  t.match(
    message(() => create(net({ subnets: [] }))),
    /give one --subnet .* or -o pool=<pool>/,
  );
  t.match(
    message(() => create(net({ subnets: [...net().subnets!, { subnet: '10.1.0.0/16' }] }))),
    /give one --subnet/,
  );
  t.match(
    message(() => create(net({ options: { pool: 'lan' } }))),
    /give one --subnet/,
    'pool and subnet',
  );
  t.equal(create(net({ subnets: [], options: { pool: 'lan' } })).name, 'web', 'a pool alone');
  t.match(
    message(() => create(net({ options: { colour: 'red' } }))),
    /option colour is not one of/,
  );
  t.match(
    message(() => create(net({ options: { mode: 'bridge' } }))),
    /give -o parent=<nic> with it/,
  );
  t.match(
    message(() => create(net({ options: { parent: 'no-such-nic0' } }))),
    /parent no-such-nic0 is not an/,
  );
  t.match(
    message(() => create(net({ options: { parent: 'bad/name' } }))),
    /parent/,
  );
  t.match(
    message(() => create(net({ options: { isolate: 'maybe' } }))),
    /give true or false/,
  );
  t.match(
    message(() => create(net({ options: { mtu: '70000' } }))),
    /mtu|MTU/,
  );
  t.match(
    message(() => create(net({ options: { state_dir: 'rel' } }))),
    /absolute path/,
  );
  t.match(
    message(() => create(net({ subnets: [{ subnet: '10.89.7.0/33' }] }))),
    /10\.89\.7\.0\/33/,
  );
});

t.test('input on stdin: JSON objects with what the spec requires', async (t) => {
  t.match(
    message(() => parseNetwork('nope')),
    /not JSON/,
  );
  t.match(
    message(() => parseNetwork('[]')),
    /not a JSON object/,
  );
  t.match(
    message(() => parseNetwork('{"name":"x","id":"123"}')),
    /64-hex-digit network ID/,
  );
  const bad = (over: object) => message(() => parseNetwork(JSON.stringify({ ...net(), ...over })));
  t.match(bad({ options: { mtu: 5 } }), /"options" is not an object of strings/);
  t.match(bad({ subnets: [{ subnet: 7 }] }), /"subnets" is not a list/);
  t.equal(parseNetwork(JSON.stringify(net())).id, ID);
  const ok = JSON.stringify(exec());
  t.equal(parseExec(ok).network_options.interface_name, 'eth0');
  t.match(
    message(() => parseExec(JSON.stringify(exec({ container_id: '../x' })))),
    /container_id/,
  );
  t.match(
    message(() => parseExec(JSON.stringify(exec({ network_options: { interface_name: 'a/b' } })))),
    /interface_name/,
  );
  t.match(
    message(() => parseExec(JSON.stringify({ ...exec(), network: 1 }))),
    /"network" is missing/,
  );
  t.match(
    message(() => parseExec(JSON.stringify({ ...exec(), port_mappings: {} }))),
    /not a list/,
  );
});

t.test('setup as a CNI ADD: bridge, macvlan, pool, ports, fixed address and MAC', async (t) => {
  const { conf, env } = asCniCall(
    exec({
      port_mappings: [
        { container_port: 80, host_port: 8080, protocol: 'tcp,udp', range: 2, host_ip: '' },
        { container_port: 53, host_port: 5353, protocol: 'udp', host_ip: '127.0.0.1' },
      ],
      network_options: { interface_name: 'eth1', static_ips: ['10.89.7.50'], static_mac: '02:42:0a:59:07:32' },
    }),
    '/run/netns/x',
    'ADD',
  );
  t.same(
    { name: conf.name, bridge: conf.bridge, pool: conf.pool, subnet: conf.subnet, gateway: conf.gateway },
    {
      name: 'podman-0123456789ab',
      bridge: 'pw0123456789ab',
      pool: 'podman-0123456789ab',
      subnet: '10.89.7.0/24',
      gateway: '10.89.7.1',
    },
  );
  t.same([conf.masquerade, conf.isolated, conf.master], [true, false, undefined]);
  t.same(conf.runtimeConfig?.portMappings, [
    { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
    { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
    { hostPort: 8080, containerPort: 80, protocol: 'udp' },
    { hostPort: 8081, containerPort: 81, protocol: 'udp' },
    { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
  ]);
  t.same([conf.runtimeConfig?.ips, conf.runtimeConfig?.mac], [['10.89.7.50'], '02:42:0a:59:07:32']);
  t.same([env.command, env.netns, env.ifname, env.containerId], ['ADD', '/run/netns/x', 'eth1', 'c'.repeat(64)]);

  const internal = asCniCall(exec({}, net({ internal: true, options: { isolate: 'true', mtu: '1400' } })), '/n', 'DEL');
  t.same([internal.conf.masquerade, internal.conf.isolated, internal.conf.mtu], [false, true, 1400]);
  const pooled = asCniCall(exec({}, net({ subnets: [], options: { pool: 'lan', state_dir: '/srv/pw' } })), '/n', 'ADD');
  t.same([pooled.conf.pool, pooled.conf.subnet, pooled.conf.stateDir], ['lan', undefined, '/srv/pw']);
  const mv = asCniCall(exec({}, net({ options: { parent: 'lo', mode: 'private' } })), '/n', 'ADD');
  const gone = asCniCall(exec({}, net({ options: { parent: 'gone-nic0' } })), '/n', 'DEL');
  t.equal(gone.conf.master, 'gone-nic0', 'a teardown does not need the parent to be there');
  t.same([mv.conf.master, mv.conf.mode, mv.conf.bridge, mv.conf.masquerade], ['lo', 'private', undefined, undefined]);
});

t.test('port mappings: whole ports 1-65535, a range within them, tcp or udp; refused before use', async (t) => {
  const withPorts = (m: object) => JSON.stringify(exec({ port_mappings: [m as never] }));
  const ok = { host_port: 8080, container_port: 80, protocol: 'tcp,udp', range: 2 };
  t.doesNotThrow(() => parseExec(withPorts(ok)));
  for (const [bad, why] of [
    [{ ...ok, host_port: '80' }, /1-65535/],
    [{ ...ok, container_port: 0 }, /1-65535/],
    [{ ...ok, range: 0 }, /range/],
    [{ ...ok, range: 1.5 }, /range/],
    [{ ...ok, host_port: 65535, range: 2 }, /past port 65535/],
    [{ ...ok, protocol: 'icmp' }, /protocol/],
    ['8080:80', /not an object/],
  ] as const)
    t.match(
      message(() => parseExec(withPorts(bad as object))),
      why,
      JSON.stringify(bad),
    );
});

t.test("-o metric= and -o rate= become the CNI call's metric and bandwidth capability", async (t) => {
  const { conf } = asCniCall(
    exec({}, net({ options: { metric: '200', rate: '10mbit/2mbit:4kb' } })),
    '/run/netns/x',
    'ADD',
  );
  t.equal(conf.metric, 200);
  t.same(conf.runtimeConfig?.bandwidth, {
    ingressRate: 10_000_000,
    ingressBurst: Math.max(1600, Math.ceil(10_000_000 / 800)) * 8,
    egressRate: 2_000_000,
    egressBurst: 4 * 1024 * 8,
  });
  t.match(
    message(() => asCniCall(exec({}, net({ options: { metric: '0' } })), '/x', 'ADD')),
    /metric "0"/,
  );
  t.match(
    message(() => asCniCall(exec({}, net({ options: { rate: 'fast' } })), '/x', 'ADD')),
    /rate|fast/,
  );
  t.match(
    message(() => asCniCall(exec({}, net({ options: { parent: 'lo', rate: '1mbit' } })), '/x', 'ADD')),
    /macvlans .* have none/,
  );
});
