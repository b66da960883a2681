/**
 * pipewright as a CNI plugin, called as a runtime calls it (CNI_* variables, the configuration on
 * stdin), against the real kernel: as the main plugin (bridge, pool, published ports), as the IPAM
 * plugin of the reference `bridge` plugin (/usr/lib/cni), and the spec's own rules (DEL twice, DEL
 * without a namespace, CHECK after the interface went, GC, STATUS, VERSION, an older cniVersion).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startEtcd } from '../helpers/etcd.js';
import {
  askPeer,
  cli,
  CNI_PLUGIN,
  firewallSnapshot,
  hostLinks,
  inNs,
  isRoot,
  must,
  netns,
  nicPair,
  peerServer,
  ping,
  removeLinkAtEnd,
  ROOT_REASON,
  startDaemon,
  stateDir,
  TEST_IMAGE,
  uniq,
} from '../helpers/host.js';

const skip =
  (!isRoot && ROOT_REASON) ||
  (!existsSync('/usr/lib/cni/bridge') && 'needs the CNI reference plugins (containernetworking-plugins)');
// Where a runtime finds plugins: the reference ones, and pipewright's (named `pipewright`).
const CNI_PATH = `/usr/lib/cni:${dirname(CNI_PLUGIN)}`;
// No daemon takes these calls (whatever runs on this host): the plugin runs the CLI itself.
const NO_DAEMON = '/run/pipewright-test-no-such-cni.sock';

interface Call {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  plugin?: string;
  /** CNI_ARGS */
  args?: string;
  /** A daemon's CNI socket to hand the call to. */
  socket?: string;
}

/** One plugin call; stdout parsed (the result or the error object), with the exit code. */
async function call(conf: object, c: Call) {
  const env: Record<string, string> = {
    CNI_COMMAND: c.command,
    CNI_PATH,
    CNI_IFNAME: c.ifname ?? 'eth0',
    PIPEWRIGHT_CNI_SOCKET: c.socket ?? NO_DAEMON,
  };
  if (c.containerId) env.CNI_CONTAINERID = c.containerId;
  if (c.netns) env.CNI_NETNS = `/run/netns/${c.netns}`;
  if (c.args) env.CNI_ARGS = c.args;
  const r = await execa(c.plugin ?? CNI_PLUGIN, [], {
    input: JSON.stringify(conf),
    env,
    extendEnv: true,
    reject: false,
  });
  return { exitCode: r.exitCode, out: r.stdout ? JSON.parse(r.stdout) : null, stderr: r.stderr, raw: r.stdout };
}

const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);

/** A main-plugin configuration on a bridge of this run (removed at the end), over pool `pool` of `dir`. */
function mainConf(t: Test, dir: string, pool: string, extra: object = {}) {
  const bridge = uniq('b');
  removeLinkAtEnd(t, bridge);
  return {
    cniVersion: '1.1.0',
    name: uniq('net'),
    type: 'pipewright',
    bridge,
    pool,
    stateDir: dir,
    masquerade: true,
    ...extra,
  };
}

t.test(
  'main plugin: ADD from a pool, guests ping, -p answers, CHECK, DEL twice and without a netns',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const [before, linksBefore] = [await firewallSnapshot(), await hostLinks()];
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.253.1.0/24'])).exitCode, 0);
    const conf = mainConf(t, dir, 'p');
    const [a, b] = [await netns(t), await netns(t)];
    const withPort = {
      ...conf,
      runtimeConfig: { portMappings: [{ hostPort: 18100, containerPort: 8080, protocol: 'tcp' }] },
    };
    const add = await call(withPort, { command: 'ADD', containerId: 'ctr-a', netns: a });
    t.equal(add.exitCode, 0, add.raw);
    t.match(add.out, {
      cniVersion: '1.1.0',
      interfaces: [{ name: /^pw/ }, { name: 'eth0', sandbox: `/run/netns/${a}` }],
      ips: [{ address: '10.253.1.2/24', gateway: '10.253.1.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.253.1.1' }],
    });
    t.notOk('version' in add.out.ips[0], 'a 1.x result names no IP version');
    const eth0 = JSON.parse((await inNs(a, ['ip', '-j', 'addr', 'show', 'eth0'])).stdout)[0];
    t.equal(eth0.address, add.out.interfaces[1].mac, "the result's MAC is the kernel's");
    t.ok(
      eth0.addr_info.some((x: { local: string }) => x.local === '10.253.1.2'),
      'the address is on eth0',
    );
    const again = await call(withPort, { command: 'ADD', containerId: 'ctr-a', netns: a });
    t.same(again.out, add.out, 'ADD again: the same result, nothing new');

    t.equal((await call(conf, { command: 'ADD', containerId: 'ctr-b', netns: b })).exitCode, 0);
    t.ok(await ping(b, '10.253.1.2'), 'b pings a');
    await peerServer(t, a, 'tcp', 8080);
    t.equal(
      await askPeer(null, 'tcp', '127.0.0.1', 18100),
      '10.253.1.1',
      "the published port answers on the host's 127.0.0.1",
    );
    const ls = await json(dir, ['ls']);
    t.same(
      ls.map((r: { guest: { kind: string; id: string } }) => r.guest),
      [
        { kind: 'cni', id: `${conf.name}/ctr-a`, name: 'ctr-a' },
        { kind: 'cni', id: `${conf.name}/ctr-b`, name: 'ctr-b' },
      ],
      'pipewright ls shows CNI attachments',
    );
    t.match(await json(dir, ['lease', 'ls']), [
      { owner: `cni:${conf.name}/ctr-a/eth0` },
      { owner: `cni:${conf.name}/ctr-b/eth0` },
    ]);

    const check = await call(
      { ...withPort, prevResult: add.out },
      { command: 'CHECK', containerId: 'ctr-a', netns: a },
    );
    t.equal(check.exitCode, 0, check.raw);
    t.equal(check.raw, '', 'CHECK prints nothing when all holds');
    // A host route the previous result names (`ip -j route` prints a /32 without its length).
    await must('ip', ['-n', a, 'route', 'add', '10.253.9.9/32', 'dev', 'eth0']);
    const withHostRoute = { ...add.out, routes: [...add.out.routes, { dst: '10.253.9.9/32' }] };
    const hostRoute = await call(
      { ...withPort, prevResult: withHostRoute },
      { command: 'CHECK', containerId: 'ctr-a', netns: a },
    );
    t.equal(hostRoute.exitCode, 0, `CHECK passes with a /32 route the container holds: ${hostRoute.raw}`);
    await must('ip', ['-n', a, 'route', 'del', '10.253.9.9/32']);
    const hostRouteGone = await call(
      { ...withPort, prevResult: withHostRoute },
      { command: 'CHECK', containerId: 'ctr-a', netns: a },
    );
    t.match(hostRouteGone.out, { code: 5, msg: 'the route to 10.253.9.9/32 is gone' }, 'and fails once it is gone');
    await must('ip', ['-n', a, 'route', 'del', 'default']);
    const noRoute = await call(
      { ...withPort, prevResult: add.out },
      { command: 'CHECK', containerId: 'ctr-a', netns: a },
    );
    t.match(
      noRoute.out,
      { code: 5, msg: 'the route to 0.0.0.0/0 via 10.253.1.1 is gone' },
      'CHECK fails once the default route is gone',
    );
    await must('ip', ['-n', a, 'link', 'del', 'eth0']);
    const broken = await call(
      { ...withPort, prevResult: add.out },
      { command: 'CHECK', containerId: 'ctr-a', netns: a },
    );
    t.equal(broken.exitCode, 1, 'CHECK fails once the interface is gone');
    t.match(broken.out, { cniVersion: '1.1.0', code: 5, msg: /eth0: stale \(eth0 is missing in the guest\)/ });

    for (const n of [1, 2])
      t.equal((await call(withPort, { command: 'DEL', containerId: 'ctr-a', netns: a })).exitCode, 0, `DEL ${n}`);
    t.equal((await call(conf, { command: 'DEL', containerId: 'ctr-b' })).exitCode, 0, 'DEL without CNI_NETNS');
    t.same(await json(dir, ['lease', 'ls']), [], 'every lease released');
    t.same(await json(dir, ['ls']), []);
    t.equal((await cli(dir, ['network', 'rm', conf.name])).exitCode, 0, 'the network ADD made is a pipewright network');
    t.same(await hostLinks(), linksBefore, 'no link left');
    t.equal(await firewallSnapshot(), before, 'the firewall as it was');
  },
);

t.test('main plugin: the bandwidth capability, a metric and sbr', { skip }, async (t) => {
  const dir = stateDir(t);
  t.equal((await cli(dir, ['pool', 'create', 'p', '10.253.6.0/24'])).exitCode, 0);
  const conf = mainConf(t, dir, 'p', { metric: 300, sbr: true, capabilities: { bandwidth: true } });
  const a = await netns(t);
  const bad = await call(
    { ...conf, runtimeConfig: { bandwidth: { ingressRate: 8_000_000 } } },
    { command: 'ADD', containerId: 'ctr-q', netns: a },
  );
  t.match(
    bad.out,
    { code: 7, msg: /ingressBurst must be a positive whole number with ingressRate/ },
    'a rate needs its burst',
  );
  t.same(await json(dir, ['ls']), [], 'and nothing was made');
  const bandwidth = { ingressRate: 8_000_000, ingressBurst: 160_000, egressRate: 4_000_000, egressBurst: 80_000 };
  const add = await call({ ...conf, runtimeConfig: { bandwidth } }, { command: 'ADD', containerId: 'ctr-q', netns: a });
  t.equal(add.exitCode, 0, add.raw);
  const hostEnd = add.out.interfaces[0].name as string;
  const tc = async (args: string[]) => JSON.parse(await must('tc', ['-j', ...args]));
  const root = (await tc(['qdisc', 'show', 'dev', hostEnd, 'root']))[0];
  t.match(
    root,
    { kind: 'tbf', options: { rate: 1_000_000, burst: 20_000 } },
    'into the container: 8 Mbit/s, a 20000-byte bucket',
  );
  const [filter] = (await tc(['filter', 'show', 'dev', hostEnd, 'ingress'])).filter((f: { options?: object }) =>
    Boolean(f.options && 'actions' in f.options),
  );
  const ifb = filter.options.actions[0].to_dev as string;
  t.match((await tc(['qdisc', 'show', 'dev', ifb, 'root']))[0], {
    kind: 'tbf',
    options: { rate: 500_000, burst: 10_000 },
  });
  t.match(JSON.parse(await must('ip', ['-n', a, '-j', 'route', 'show', 'default'])), [{ dev: 'eth0', metric: 300 }]);
  const address = (add.out.ips[0].address as string).split('/')[0];
  const [rule] = JSON.parse(await must('ip', ['-n', a, '-j', 'rule'])).filter(
    (r: { src?: string }) => r.src === address,
  );
  t.match(rule, { priority: 10000 }, 'sbr: a rule for its address');
  t.match(JSON.parse(await must('ip', ['-n', a, '-j', 'route', 'show', 'table', rule.table])), [
    { dst: 'default', gateway: '10.253.6.1', dev: 'eth0' },
    { dst: '10.253.6.0/24', dev: 'eth0' },
  ]);
  t.equal((await call(conf, { command: 'DEL', containerId: 'ctr-q', netns: a })).exitCode, 0);
  t.equal((await cli(dir, ['network', 'rm', conf.name])).exitCode, 0);
  // Other tests may run on this host meanwhile: only this test's links are looked for.
  const left = (await hostLinks()).filter((l) => [hostEnd, ifb, conf.bridge].includes(l));
  t.same(left, [], 'DEL removed the host end and the ifb; network rm the bridge');
});

t.test('IPAM plugin: the reference bridge plugin with "ipam": {"type": "pipewright"}', { skip }, async (t) => {
  const dir = stateDir(t);
  t.equal((await cli(dir, ['pool', 'create', 'q', '10.253.2.0/24'])).exitCode, 0);
  const bridge = uniq('b');
  removeLinkAtEnd(t, bridge);
  const name = uniq('net');
  const conf = {
    cniVersion: '1.0.0',
    name,
    type: 'bridge',
    bridge,
    isGateway: true,
    ipam: { type: 'pipewright', pool: 'q', stateDir: dir },
  };
  const guest = await netns(t);
  const add = await call(conf, { command: 'ADD', containerId: 'ctr-i', netns: guest, plugin: '/usr/lib/cni/bridge' });
  t.equal(add.exitCode, 0, add.raw);
  t.match(
    add.out.ips,
    [{ address: '10.253.2.2/24', gateway: '10.253.2.1' }],
    'the bridge plugin got its address from the pool',
  );
  t.match((await inNs(guest, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout, /10\.253\.2\.2\/24/);
  t.match(await json(dir, ['lease', 'ls']), [
    { address: '10.253.2.2', owner: `cni:${name}/ctr-i/eth0`, reserved: true },
  ]);
  t.same(await json(dir, ['gc']), [], "pipewright's gc leaves an IPAM lease to the runtime");
  const check = await call(
    { ...conf, prevResult: add.out },
    { command: 'CHECK', containerId: 'ctr-i', netns: guest, plugin: '/usr/lib/cni/bridge' },
  );
  t.equal(check.exitCode, 0, check.raw);
  for (const n of [1, 2]) {
    const del = await call(conf, { command: 'DEL', containerId: 'ctr-i', netns: guest, plugin: '/usr/lib/cni/bridge' });
    t.equal(del.exitCode, 0, `DEL ${n}: ${del.raw}`);
  }
  t.same(await json(dir, ['lease', 'ls']), [], 'DEL released the lease');
});

t.test('the spec: VERSION, an older cniVersion, bad input, GC, STATUS', { skip }, async (t) => {
  const dir = stateDir(t);
  const version = await call({ cniVersion: '0.3.1' }, { command: 'VERSION' });
  t.same(version.out, { cniVersion: '0.3.1', supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  t.equal((await cli(dir, ['pool', 'create', 'tiny', '10.253.3.0/30'])).exitCode, 0);
  const conf = mainConf(t, dir, 'tiny', { cniVersion: '0.4.0' });
  const [a, b] = [await netns(t), await netns(t)];
  const status = async () => call(conf, { command: 'STATUS' });
  t.equal((await status()).exitCode, 0, 'STATUS: ready');
  const add = await call(conf, { command: 'ADD', containerId: 'ctr-a', netns: a });
  t.match(
    add.out,
    { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.253.3.2/30' }] },
    'a 0.4.0 result names the IP version',
  );
  t.match((await status()).out, { code: 50, msg: /pool tiny has no free address/ }, 'STATUS: the pool is exhausted');
  const full = await call(conf, { command: 'ADD', containerId: 'ctr-b', netns: b });
  t.equal(full.exitCode, 1);
  t.match(full.out, { code: 5, msg: /tiny/ }, 'ADD into a full pool: one error object');
  t.same(await json(dir, ['ls']).then((l) => l.length), 1, 'the failed ADD left nothing');

  const bad = await call({ ...conf, cniVersion: '9.9.9' }, { command: 'ADD', containerId: 'ctr-b', netns: b });
  t.match(bad.out, { code: 1, msg: /cniVersion "9\.9\.9" is not one of/ });
  const noType = await call({ ...conf, type: 'other' }, { command: 'ADD', containerId: 'ctr-b', netns: b });
  t.match(noType.out, { code: 7 });
  const noNetns = await call(conf, { command: 'ADD', containerId: 'ctr-b' });
  t.match(noNetns.out, { code: 4, msg: /CNI_NETNS is required for ADD/ });

  t.equal((await cli(dir, ['pool', 'create', 'roomy', '10.253.4.0/24'])).exitCode, 0);
  const roomy = { ...conf, pool: 'roomy' };
  t.equal(
    (await call(roomy, { command: 'ADD', containerId: 'ctr-b', netns: b })).exitCode,
    1,
    'another pool on the same network name is refused',
  );
  const gc = await call(
    { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctr-z', ifname: 'eth0' }] },
    { command: 'GC' },
  );
  t.equal(gc.exitCode, 0, gc.raw);
  t.same(await json(dir, ['ls']), [], 'GC removed the attachment the valid list does not name');
  t.same(await json(dir, ['lease', 'ls']), []);
  t.equal((await cli(dir, ['network', 'rm', conf.name])).exitCode, 0);
});

t.test('another plugin\'s "type": refused before a store is made', { skip }, async (t) => {
  const dir = join(stateDir(t), 'not-yet');
  // Another plugin's configuration names no pipewright state dir: the store would be the environment's.
  const conf = { cniVersion: '1.1.0', name: uniq('net'), type: 'bridge', bridge: uniq('b') };
  for (const command of ['ADD', 'STATUS']) {
    const r = await execa(CNI_PLUGIN, [], {
      input: JSON.stringify(conf),
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: 'ctr-t',
        CNI_NETNS: '/run/netns/none',
        CNI_PATH,
        CNI_IFNAME: 'eth0',
        PIPEWRIGHT_CNI_SOCKET: NO_DAEMON,
        PIPEWRIGHT_STATE_DIR: dir,
      },
      extendEnv: true,
      reject: false,
    });
    t.match(JSON.parse(r.stdout), { code: 7, msg: /"type" is bridge/ }, `${command}: refused`);
    t.notOk(existsSync(dir), `${command}: no state dir made`);
  }
});

t.test('main plugin on a macvlan parent: a pool from "subnet", CNI_ARGS IP= honoured', { skip }, async (t) => {
  const dir = stateDir(t);
  const nic = await nicPair(t, 'm');
  const name = uniq('net');
  const conf = {
    cniVersion: '1.0.0',
    name,
    type: 'pipewright',
    master: nic,
    mode: 'bridge',
    subnet: '10.253.7.0/24',
    gateway: '10.253.7.1',
    stateDir: dir,
  };
  const [a, b] = [await netns(t), await netns(t)];
  const add = await call(conf, { command: 'ADD', containerId: 'm-a', netns: a, args: 'IgnoreUnknown=1;IP=10.253.7.9' });
  t.equal(add.exitCode, 0, add.raw);
  t.match(add.out, {
    interfaces: [{ name: 'eth0', sandbox: `/run/netns/${a}` }],
    ips: [{ address: '10.253.7.9/24', gateway: '10.253.7.1', interface: 0 }],
  });
  t.equal(add.out.interfaces.length, 1, 'a macvlan has no host end');
  t.match(
    await json(dir, ['pool', 'ls']),
    [{ name: `cni-${name}`, subnet: '10.253.7.0/24' }],
    'the pool "subnet" made',
  );
  const addB = await call(conf, { command: 'ADD', containerId: 'm-b', netns: b, args: 'MAC=02:11:22:33:44:55' });
  t.equal(addB.out.interfaces[0].mac, '02:11:22:33:44:55', 'CNI_ARGS MAC= honoured');
  t.match((await inNs(b, ['ip', 'link', 'show', 'eth0'])).stdout, /link\/ether 02:11:22:33:44:55/, 'in the kernel too');
  t.ok(await ping(b, '10.253.7.9'), 'macvlan guests on one parent reach each other');
  t.same(await json(dir, ['gc']), [], "pipewright's gc leaves CNI attachments whose namespace exists");
  const c = await netns(t);
  t.equal((await call(conf, { command: 'ADD', containerId: 'm-c', netns: c })).exitCode, 0);
  await must('ip', ['netns', 'del', c]); // the runtime removed the container, and no DEL came
  t.match(
    await json(dir, ['gc']),
    [{ kind: 'attachment', target: 'm-c eth0', reason: 'guest no longer exists' }],
    '...and removes one whose namespace went',
  );
  const gc = await call(
    { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'm-b', ifname: 'eth0' }] },
    { command: 'GC' },
  );
  t.equal(gc.exitCode, 0, gc.raw);
  t.same(
    (await json(dir, ['ls'])).map((r: { guest: { name: string } }) => r.guest.name),
    ['m-b'],
    'CNI GC removed what the valid list does not name, and kept what it names',
  );
  t.equal((await call(conf, { command: 'DEL', containerId: 'm-b', netns: b })).exitCode, 0);
  t.same(await json(dir, ['lease', 'ls']), []);
  t.same(await json(dir, ['ls']), []);
});

t.test(
  'with a daemon running, the plugin hands calls to it; killed, the plugin does the work itself',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    t.equal((await cli(dir, ['pool', 'create', 'h', '10.253.8.0/24'])).exitCode, 0);
    const [socket, pluginSocket] = [`/run/pipewright/${uniq('cni')}.sock`, `/run/docker/plugins/${uniq('pw')}.sock`];
    // The daemon is killed below: its socket files stay unless removed.
    t.teardown(() => [socket, pluginSocket].forEach((f) => rmSync(f, { force: true })));
    const daemon = await startDaemon(t, dir, ['--socket', pluginSocket, '--cni-socket', socket], {
      DOCKER_HOST: 'unix:///run/pipewright-test-no-docker.sock',
    });
    const conf = mainConf(t, dir, 'h');
    const [a, b] = [await netns(t), await netns(t)];
    const add = await call(conf, { command: 'ADD', containerId: 'h-a', netns: a, socket });
    t.equal(add.exitCode, 0, add.raw);
    t.match(add.out, { ips: [{ address: '10.253.8.2/24' }] });
    t.ok(
      daemon.lines().some((l) => l.includes('"CNI.ADD"')),
      'the daemon did the ADD',
    );
    daemon.proc.kill('SIGKILL');
    await daemon.proc;
    const second = await call(conf, { command: 'ADD', containerId: 'h-b', netns: b, socket });
    t.equal(second.exitCode, 0, `no daemon answers on its (stale) socket: the plugin did it: ${second.raw}`);
    t.ok(await ping(b, '10.253.8.2'), 'both work');
    for (const [id, ns] of [
      ['h-a', a],
      ['h-b', b],
    ])
      t.equal((await call(conf, { command: 'DEL', containerId: id, netns: ns, socket })).exitCode, 0);
    t.same(await json(dir, ['lease', 'ls']), []);
    t.equal((await cli(dir, ['network', 'rm', conf.name])).exitCode, 0);
  },
);

t.test(
  'IPAM plugin on an etcd store: two hosts never get the same address; STATUS 50 when etcd is unreachable',
  { skip },
  async (t) => {
    const store = `etcd://${await startEtcd(t)}`;
    const [hostA, hostB] = [stateDir(t), stateDir(t)];
    t.equal((await cli(hostA, ['--store', store, 'pool', 'create', 'shared', '10.253.9.0/24'])).exitCode, 0);
    const name = uniq('net');
    const confOf = (dir: string) => {
      const bridge = uniq('b');
      removeLinkAtEnd(t, bridge);
      return {
        cniVersion: '1.0.0',
        name,
        type: 'bridge',
        bridge,
        ipam: { type: 'pipewright', pool: 'shared', stateDir: dir, store },
      };
    };
    const [confA, confB] = [confOf(hostA), confOf(hostB)];
    const [a, b] = [await netns(t), await netns(t)];
    const bridge = (conf: object, command: string, id: string, ns: string) =>
      call(conf, { command, containerId: id, netns: ns, plugin: '/usr/lib/cni/bridge' });
    const [addA, addB] = [await bridge(confA, 'ADD', 'e-a', a), await bridge(confB, 'ADD', 'e-b', b)];
    t.same([addA.exitCode, addB.exitCode], [0, 0], `${addA.raw} ${addB.raw}`);
    t.not(
      addA.out.ips[0].address,
      addB.out.ips[0].address,
      'the two hosts got different addresses from the shared pool',
    );
    const leases = await json(hostA, ['--store', store, 'lease', 'ls']);
    t.equal(new Set(leases.map((l: { host: string }) => l.host)).size, 2, 'held by two hosts');
    for (const [conf, id, ns] of [
      [confA, 'e-a', a],
      [confB, 'e-b', b],
    ] as const)
      t.equal((await bridge(conf, 'DEL', id, ns)).exitCode, 0);
    t.same(await json(hostA, ['--store', store, 'lease', 'ls']), [], 'both released');
    const down = await call(
      { ...confA, type: 'pipewright', ipam: undefined, pool: 'shared', store: 'etcd://127.0.0.1:1', stateDir: hostA },
      { command: 'STATUS' },
    );
    t.match(down.out, { code: 50 }, 'STATUS: the store cannot be reached');
  },
);

const podman =
  isRoot &&
  (await execa('podman', ['image', 'exists', TEST_IMAGE], { reject: false }).catch(() => ({ exitCode: 1 })))
    .exitCode === 0;

t.test(
  'podman (CNI backend): run --network on a pipewright conflist, ping, -p, removal releases the lease',
  { skip: skip || (!podman && 'needs podman and the test image in its store (scripts/test.sh builds it)') },
  async (t) => {
    const dir = stateDir(t);
    t.equal((await cli(dir, ['pool', 'create', 'pod', '10.253.5.0/24'])).exitCode, 0);
    const conf = mainConf(t, dir, 'pod', { cniVersion: '1.0.0', capabilities: { portMappings: true } });
    const { cniVersion, name, ...plugin } = conf;
    const cfg = mkdtempSync(join(tmpdir(), 'pw-podman-'));
    t.teardown(() => rmSync(cfg, { recursive: true, force: true }));
    mkdirSync(join(cfg, 'net.d'));
    writeFileSync(join(cfg, 'net.d', `${name}.conflist`), JSON.stringify({ cniVersion, name, plugins: [plugin] }));
    writeFileSync(
      join(cfg, 'containers.conf'),
      `[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "${join(cfg, 'net.d')}"\ncni_plugin_dirs = ["${dirname(CNI_PLUGIN)}", "/usr/lib/cni"]\n`,
    );
    const pod = (...args: string[]) =>
      execa('podman', args, { reject: false, env: { CONTAINERS_CONF: join(cfg, 'containers.conf') } });
    const run = async (extra: string[]) => {
      const ctr = uniq('c');
      t.teardown(() => pod('rm', '-f', '-t', '0', ctr));
      // podman raises the open-files and process limits by default, which a host without CAP_SYS_RESOURCE refuses.
      const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
      const r = await pod(
        'run',
        '-d',
        ...limits,
        '--name',
        ctr,
        '--network',
        name,
        ...extra,
        TEST_IMAGE,
        'sleep',
        '600',
      );
      t.equal(r.exitCode, 0, r.stderr);
      return ctr;
    };
    const a = await run(['-p', '18120:8080']);
    const b = await run([]);
    const leases = await json(dir, ['lease', 'ls']);
    t.equal(leases.length, 2, 'each container holds a lease from the pool');
    t.ok(leases.every((l: { owner: string }) => l.owner.startsWith(`cni:${name}/`)));
    const idA = JSON.parse((await pod('inspect', a)).stdout)[0].Id as string;
    const ipA = leases.find((l: { owner: string; address: string }) => l.owner.includes(idA))?.address;
    t.match(
      (await pod('exec', a, 'ip', '-4', 'addr', 'show', 'eth0')).stdout,
      new RegExp(`inet ${ipA}/24`),
      "the container's eth0 holds it",
    );
    t.equal((await pod('exec', b, 'ping', '-c', '1', '-W', '2', ipA)).exitCode, 0, 'b pings a');
    const pid = (await pod('inspect', '-f', '{{.State.Pid}}', a)).stdout.trim();
    await peerServer(t, `pid:${pid}`, 'tcp', 8080);
    t.equal(await askPeer(null, 'tcp', '127.0.0.1', 18120), '10.253.5.1', '-p answers on 127.0.0.1');
    t.equal((await pod('rm', '-f', '-t', '0', a, b)).exitCode, 0);
    t.same(await json(dir, ['lease', 'ls']), [], "removing the containers released their leases (podman's DEL)");
    t.same(await json(dir, ['ls']), []);
    t.equal((await cli(dir, ['network', 'rm', name])).exitCode, 0);
  },
);

const containerd =
  isRoot && (await execa('containerd', ['--version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0;
const dockerImage =
  isRoot &&
  (await execa('docker', ['image', 'inspect', TEST_IMAGE], { reject: false }).catch(() => ({ exitCode: 1 })))
    .exitCode === 0;

/** A containerd of the test's own (root, state and socket in a temp dir), stopped at teardown. */
async function privateContainerd(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'pw-containerd-'));
  const socket = join(dir, 'containerd.sock');
  writeFileSync(join(dir, 'config.toml'), 'version = 2\n');
  const daemon = execa(
    'containerd',
    [
      '--config',
      join(dir, 'config.toml'),
      '--root',
      join(dir, 'root'),
      '--state',
      join(dir, 'state'),
      '--address',
      socket,
    ],
    {
      reject: false,
      all: true,
    },
  );
  const ctr = (...args: string[]) =>
    execa('ctr', ['--address', socket, '--namespace', 'pwtest', ...args], { reject: false, encoding: 'utf8' });
  t.teardown(async () => {
    // Its containers first (a failed run can leave one, and its rootfs mounted), then the daemon.
    for (const id of String((await ctr('containers', 'ls', '-q')).stdout)
      .split('\n')
      .filter(Boolean)) {
      await ctr('tasks', 'kill', '-s', 'KILL', id);
      await ctr('tasks', 'delete', '-f', id);
      await ctr('containers', 'delete', id);
    }
    daemon.kill('SIGTERM');
    await daemon;
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '');
    for (const m of mounts.filter((m) => m.startsWith(dir)).reverse())
      await execa('umount', ['-l', m], { reject: false });
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
  return ctr;
}

t.test(
  'containerd: ctr run --cni on a pipewright conflist: ADD gives the container its address, DEL at its end releases it',
  {
    skip:
      skip ||
      (!containerd && 'needs containerd (Debian: containerd)') ||
      (!dockerImage && 'needs the test image in Docker (scripts/test.sh builds it)'),
  },
  async (t) => {
    const dir = stateDir(t);
    t.equal((await cli(dir, ['pool', 'create', 'ctr', '10.253.6.0/24'])).exitCode, 0);
    const { cniVersion, name, ...plugin } = mainConf(t, dir, 'ctr', { cniVersion: '1.0.0' });
    // ctr takes the first conflist of /etc/cni/net.d and its plugins from /opt/cni/bin (no flags for either).
    const [netd, file] = ['/etc/cni/net.d', '00-pipewright-test.conflist'];
    mkdirSync(netd, { recursive: true });
    writeFileSync(join(netd, file), JSON.stringify({ cniVersion, name, plugins: [plugin] }));
    t.teardown(() => rmSync(join(netd, file), { force: true }));
    const first = readdirSync(netd)
      .filter((f) => /\.conf(list)?$/.test(f))
      .sort()[0];
    t.equal(first, file, `ctr will read this test's conflist (${netd} holds ${first}, which sorts first)`);
    const ctr = await privateContainerd(t);
    const image = join(dir, 'image.tar');
    await must('docker', ['save', '-o', image, TEST_IMAGE]);
    const imported = await ctr('images', 'import', image);
    t.equal(imported.exitCode, 0, String(imported.stderr));
    const id = uniq('ctr');
    const run = ctr(
      'run',
      '--rm',
      '--cni',
      `docker.io/${TEST_IMAGE}`,
      id,
      'sh',
      '-c',
      "ip -4 -o address show eth0 | awk '{print $4}'; sleep 4",
    );
    let [held, ended]: [{ owner: string; address: string }[], boolean] = [[], false];
    void run.finally(() => (ended = true));
    while (!ended && held.length === 0) {
      held = await json(dir, ['lease', 'ls']);
      if (!held.length) await new Promise((r) => setTimeout(r, 100));
    }
    const r = await run;
    t.equal(r.exitCode, 0, String(r.stderr));
    t.equal(held.length, 1, 'while it ran, the container held one lease');
    t.match(held[0]?.owner, new RegExp(`^cni:${name}/`), "the CNI network's");
    t.equal(
      String(r.stdout).trim(),
      `${held[0]?.address}/24`,
      'and its eth0 had that address when its command started (ADD)',
    );
    t.same(await json(dir, ['lease', 'ls']), [], "its end released the lease (ctr's DEL)");
    t.same(await json(dir, ['ls']), [], 'and left no attachment');
  },
);
