/**
 * `pipewright daemon` as Docker's network, IPAM and volume driver, against the real dockerd:
 * networks made with `-d` are pipewright networks (bridge, gateway, published ports, the firewall
 * of pipewright's own); networks made with `--ipam-driver` take their subnet, gateway and container
 * addresses from pipewright's pools and leases; volumes made with `-d` are pipewright volumes (a
 * size is a hard quota). Each test run serves its own socket, so the driver's name is unique
 * (Docker names a plugin after its socket).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/db/store.js';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startEtcd } from '../helpers/etcd.js';
import {
  dockerNetworkCreate,
  askPeer,
  cli,
  dockerUp,
  firewallSnapshot,
  hostLinks,
  isRoot,
  must,
  netns,
  nicPair,
  peerServer,
  removeLinkAtEnd,
  RUN,
  sh,
  stateDir,
  startDaemon,
  TEST_IMAGE,
  uniq,
  until,
} from '../helpers/host.js';

const docker = isRoot && (await dockerUp());
const skip = !docker && 'needs root and a running Docker engine (scripts/test.sh starts one)';
const DRIVER = `${RUN}pw`;
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;

/** The daemon on this run's socket (no CNI socket), stopped at teardown; resolves once it listens. */
function daemon(t: Test, dir: string) {
  return startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', '']);
}

/** A plugin call as dockerd makes it (on this run's socket, or another daemon's). */
function post(method: string, body: object, socketPath = SOCKET): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: `/${method}`, method: 'POST' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const json = async (dir: string, args: string[], env: Record<string, string> = {}) =>
  JSON.parse((await cli(dir, [...args, '--json'], env)).stdout);
/** After docker rm: the endpoints' links go just after DeleteEndpoint is answered; their records with them. */
const endpointsGone = async (dir: string) =>
  (await until(async () => (await json(dir, ['ls'])).length === 0, 3000)) >= 0;
const ipOf = async (ctr: string) =>
  (await must('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', ctr])).trim();

/** A Docker network on this run's IPAM driver (its bridge named for the run), removed at teardown. */
async function network(t: Test, args: string[]): Promise<string> {
  const net = uniq('n');
  const made = await dockerNetworkCreate(net, {
    ipam: DRIVER,
    opts: ['-o', `com.docker.network.bridge.name=${uniq('b')}`, ...args],
  });
  t.equal(made.exitCode, 0, made.stderr);
  t.teardown(() => sh('docker', ['network', 'rm', net]));
  return net;
}

/**
 * A container with --mac-address, made through the Engine API (the docker CLI here wants API 1.44
 * for it, dockerd speaks 1.41).
 */
async function containerWithMac(t: Test, net: string, mac: string) {
  const name = uniq('c');
  const call = (path: string, body: object) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        {
          socketPath: '/var/run/docker.sock',
          path: `/v1.41${path}`,
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  t.equal(
    await call(`/containers/create?name=${name}`, {
      Image: TEST_IMAGE,
      Cmd: ['sleep', '600'],
      MacAddress: mac,
      HostConfig: { NetworkMode: net },
    }),
    201,
  );
  t.equal(await call(`/containers/${name}/start`, {}), 204);
  return { name };
}

async function container(t: Test, args: string[], command = ['sleep', '600']) {
  const name = uniq('c');
  const r = await sh('docker', ['run', '-d', '--name', name, ...args, TEST_IMAGE, ...command]);
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  return { name, r };
}

t.test('IPAM driver: a network from --subnet, --ip honoured, addresses leased and released', { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  const net = await network(t, ['--subnet', '10.252.50.0/24', '--gateway', '10.252.50.1']);
  const inspect = JSON.parse(await must('docker', ['network', 'inspect', net]))[0].IPAM;
  t.same(
    inspect.Config,
    [{ Subnet: '10.252.50.0/24', Gateway: '10.252.50.1' }],
    'docker network inspect shows the subnet and gateway',
  );
  const [pool] = await json(dir, ['pool', 'ls']);
  t.equal(pool.subnet, '10.252.50.0/24', 'a pipewright pool holds the subnet');

  const a = await container(t, ['--network', net, '--ip', '10.252.50.7']);
  t.equal(a.r.exitCode, 0, a.r.stderr);
  t.equal(await ipOf(a.name), '10.252.50.7', '--ip is the address the container has');
  const taken = await container(t, ['--network', net, '--ip', '10.252.50.7']);
  t.not(taken.r.exitCode, 0, 'the same --ip again is refused');
  t.match(taken.r.stderr, /10\.252\.50\.7 in pool \S+ is taken by/);
  const b = await container(t, ['--network', net]);
  t.equal(b.r.exitCode, 0, b.r.stderr);
  const leased = (await json(dir, ['lease', 'ls'])).map((l: { address: string }) => l.address).sort();
  t.same(
    leased,
    ['10.252.50.1', '10.252.50.7', await ipOf(b.name)].sort(),
    'the gateway and both containers hold leases',
  );
  // A lease Docker forgot to release (its container went while the daemon was down), older than gc's grace.
  t.equal(
    (await cli(dir, ['lease', 'reserve', pool.name, '10.252.50.99', '--owner', 'docker:02:42:0a:fc:32:63'])).exitCode,
    0,
  );
  const store = Store.open(dir);
  store.db.prepare(`UPDATE leases SET created_at = '2020-01-01T00:00:00.000Z'`).run();
  store.close();
  const gc = await json(dir, ['gc']);
  t.match(
    gc,
    [{ kind: 'lease', target: `${pool.name} 10.252.50.99`, reason: /Docker has no endpoint with it/ }],
    'gc releases the forgotten one',
  );
  t.equal(gc.length, 1, "and keeps the containers' and the gateway's");

  await must('docker', ['rm', '-f', a.name, b.name]);
  t.same(
    (await json(dir, ['lease', 'ls'])).map((l: { address: string }) => l.address),
    ['10.252.50.1'],
    "removed containers' addresses are released",
  );
  await must('docker', ['network', 'rm', net]);
  t.same(await json(dir, ['pool', 'ls']), [], 'the pool made for the network goes with it');
  t.same(await json(dir, ['lease', 'ls']), []);
});

t.test("IPAM driver: an operator's pool by --ipam-opt pool=, kept after the network", { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  t.equal((await cli(dir, ['pool', 'create', 'shared', '10.252.51.0/24'])).exitCode, 0);
  const net = await network(t, ['--ipam-opt', 'pool=shared']);
  const config = JSON.parse(await must('docker', ['network', 'inspect', net]))[0].IPAM.Config[0];
  t.same(config, { Subnet: '10.252.51.0/24', Gateway: '10.252.51.1' }, "the pool's subnet and gateway");
  const c = await container(t, ['--network', net]);
  t.equal(c.r.exitCode, 0, c.r.stderr);
  t.match(await ipOf(c.name), /^10\.252\.51\.\d+$/);
  await must('docker', ['rm', '-f', c.name]);
  await must('docker', ['network', 'rm', net]);
  t.equal((await json(dir, ['pool', 'ls'])).length, 1, "the operator's pool stays");

  const bad = await sh('docker', ['network', 'create', '--ipam-driver', DRIVER, uniq('n')]);
  t.not(bad.exitCode, 0);
  t.match(
    bad.stderr,
    /give the network a --subnet, or an existing pipewright pool with --ipam-opt pool=<name>/,
    "the driver's one-line error reaches the user",
  );
});

t.test(
  "IPAM driver: an operator's pool on a subnet the host routes (a macvlan's LAN) is one line without --subnet, at once; with it, the network",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const parent = await nicPair(t, 'p');
    await must('ip', ['address', 'add', '10.252.72.2/24', 'dev', parent]);
    t.equal(
      (await cli(dir, ['pool', 'create', 'lan72', '10.252.72.0/24', '--range', '10.252.72.100-10.252.72.150']))
        .exitCode,
      0,
    );
    const args = [
      'network',
      'create',
      '-d',
      DRIVER,
      '--ipam-driver',
      DRIVER,
      '--ipam-opt',
      'pool=lan72',
      '-o',
      `parent=${parent}`,
    ];
    // Docker asks again for as long as the pool overlaps a route: a driver that answered it would never end.
    const started = Date.now();
    const bad = await execa('docker', [...args, uniq('n')], { reject: false, timeout: 60_000 });
    t.comment(`refused in ${Date.now() - started} ms`);
    t.notOk(bad.timedOut, 'docker network create ended');
    t.not(bad.exitCode, 0);
    t.match(
      bad.stderr,
      `pool lan72 (10.252.72.0/24) is on this host's route to 10.252.72.0/24 (${parent}), which Docker refuses for a network without --subnet: add --subnet 10.252.72.0/24`,
    );
    t.same(await json(dir, ['network', 'ls']), [], 'no network made');
    const net = uniq('n');
    const made = await sh('docker', [...args, '--subnet', '10.252.72.0/24', net]);
    t.equal(made.exitCode, 0, made.stderr);
    t.teardown(() => sh('docker', ['network', 'rm', net]));
    t.match(
      await json(dir, ['network', 'ls']),
      [{ kind: 'macvlan', bridge: parent }],
      'with --subnet: a macvlan network on the pool',
    );
  },
);

t.test(
  "IPAM driver on an etcd store: two hosts' Docker networks on one pool never get the same address",
  { skip },
  async (t) => {
    const store = `etcd://${await startEtcd(t)}`;
    const [hostA, hostB] = [stateDir(t), stateDir(t)];
    const socketB = `/run/docker/plugins/${RUN}pwb.sock`;
    await startDaemon(t, hostA, ['--socket', SOCKET, '--cni-socket', ''], { PIPEWRIGHT_STORE: store });
    await startDaemon(t, hostB, ['--socket', socketB, '--cni-socket', ''], { PIPEWRIGHT_STORE: store });
    t.equal((await cli(hostA, ['--store', store, 'pool', 'create', 'shared', '10.252.80.0/27'])).exitCode, 0);
    // Host A: this dockerd, its containers started at once. Host B: dockerd's IPAM calls to B's daemon, meanwhile.
    const net = await network(t, ['--ipam-opt', 'pool=shared']);
    // B's subnet is routed here (A's network's bridge, on this one kernel), so B names it, as B's
    // dockerd would with --subnet.
    const { PoolID } = await post(
      'IpamDriver.RequestPool',
      { AddressSpace: 'pipewright', Pool: '10.252.80.0/27', Options: { pool: 'shared' } },
      socketB,
    );
    const macB = (i: number) => `02:42:0b:00:00:${String(i).padStart(2, '0')}`;
    const [containersA, answersB] = await Promise.all([
      Promise.all([0, 1, 2, 3, 4].map(() => container(t, ['--network', net]))),
      Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          post(
            'IpamDriver.RequestAddress',
            { PoolID, Address: '', Options: { 'com.docker.network.endpoint.macaddress': macB(i) } },
            socketB,
          ),
        ),
      ),
    ]);
    t.ok(
      containersA.every((c) => c.r.exitCode === 0),
      containersA.map((c) => c.r.stderr).join(''),
    );
    const addressesA = await Promise.all(containersA.map((c) => ipOf(c.name)));
    const addressesB = answersB.map((a) => a.Address?.split('/')[0]);
    t.ok(addressesB.every(Boolean), `host B got its ${addressesB.length} addresses`);
    const all = [...addressesA, ...addressesB];
    t.equal(new Set(all).size, all.length, `${all.length} addresses, each once: ${all.join(' ')}`);
    const leases = await json(hostB, ['--store', store, 'lease', 'ls']);
    t.equal(new Set(leases.map((l: { host: string }) => l.host)).size, 2, 'held by two hosts');
    t.ok(
      all.every((a) => leases.some((l: { address: string }) => l.address === a)),
      'each one a lease in the shared store',
    );
    for (const a of addressesB) await post('IpamDriver.ReleaseAddress', { PoolID, Address: a }, socketB);
    await must('docker', ['rm', '-f', ...containersA.map((c) => c.name)]);
    await must('docker', ['network', 'rm', net]);
    t.same(await json(hostA, ['--store', store, 'lease', 'ls']), [], 'all released, by both hosts');
  },
);

t.test('volume driver: --opt size is a hard quota; in use is kept; rm removes it', { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  const vol = uniq('v');
  t.teardown(() => sh('docker', ['volume', 'rm', '-f', vol]));
  const made = await sh('docker', ['volume', 'create', '-d', DRIVER, '--opt', 'size=16M', vol]);
  t.equal(made.exitCode, 0, made.stderr);
  const [inspect] = JSON.parse(await must('docker', ['volume', 'inspect', vol]));
  t.equal(inspect.Driver, DRIVER);
  t.equal(inspect.Mountpoint, `${dir}/volumes/${vol}/_data`, 'the mountpoint is the pipewright volume');
  t.equal((await json(dir, ['volume', 'ls']))[0].Name, vol, 'pipewright volume ls lists it');

  const fill = await sh('docker', [
    'run',
    '--rm',
    '-v',
    `${vol}:/data`,
    TEST_IMAGE,
    'dd',
    'if=/dev/zero',
    'of=/data/big',
    'bs=1M',
    'count=64',
  ]);
  t.not(fill.exitCode, 0, 'writing 64 MiB into a 16M volume fails');
  t.match(fill.stderr, /No space left on device/);

  const user = await container(t, ['-v', `${vol}:/data`]);
  t.equal(user.r.exitCode, 0, user.r.stderr);
  await must('docker', ['exec', user.name, 'sh', '-c', 'echo kept > /data/f']);
  const busy = await cli(dir, ['volume', 'rm', vol]);
  t.equal(busy.exitCode, 1);
  t.match(busy.stderr, /is in use by docker mount/, 'pipewright will not remove a volume a container has mounted');
  await must('docker', ['rm', '-f', user.name]);
  t.equal(readFileSync(`${dir}/volumes/${vol}/_data/f`, 'utf8'), 'kept\n', 'the data is on the volume');
  const rm = await sh('docker', ['volume', 'rm', vol]);
  t.equal(rm.exitCode, 0, rm.stderr);
  t.same(await json(dir, ['volume', 'ls']), [], 'gone from pipewright too');
  t.notOk(readFileSync('/proc/self/mountinfo', 'utf8').includes(`${dir}/volumes/${vol}`), 'its image is unmounted');
});

t.test(
  'the daemon: one line per error, its socket removed when it stops, refuses a second on the same socket',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const { proc: first } = await daemon(t, dir);
    const second = await cli(dir, ['daemon', '--socket', SOCKET]);
    t.equal(second.exitCode, 1);
    t.match(second.stderr, /another daemon answers on .*; stop it first/);
    t.same(await post('Plugin.Activate', {}), { Implements: ['NetworkDriver', 'IpamDriver', 'VolumeDriver'] });
    const err = await post('IpamDriver.RequestAddress', { PoolID: 'nosuch' });
    t.match(err.Err, /^no pool named nosuch/, 'an error is {"Err": "<one line>"}');
    first.kill('SIGTERM');
    await first;
    t.notOk(existsSync(SOCKET), 'the socket went with the daemon');
  },
);

/** A pipewright network driven by Docker (`-d` this run's daemon; IPAM by it too unless told), removed at teardown. */
async function pwNetwork(t: Test, args: string[], ipam = DRIVER): Promise<{ net: string; bridge: string }> {
  const [net, bridge] = [uniq('n'), uniq('b')];
  removeLinkAtEnd(t, bridge); // after the network's own removal, should that fail
  const made = await dockerNetworkCreate(net, { driver: DRIVER, ipam, opts: ['-o', `bridge=${bridge}`, ...args] });
  t.equal(made.exitCode, 0, made.stderr);
  t.teardown(() => sh('docker', ['network', 'rm', net]));
  return { net, bridge };
}

const inspectOf = async (ctr: string) => JSON.parse(await must('docker', ['inspect', ctr]))[0];

t.test(
  'network driver: containers on a pipewright network ping, --ip and -p honoured, rm leaves the host as it was',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const [before, linksBefore] = [await firewallSnapshot(), await hostLinks()];
    const { net, bridge } = await pwNetwork(t, ['--subnet', '10.252.60.0/24', '--gateway', '10.252.60.1']);
    const [pwNet] = await json(dir, ['network', 'ls']);
    t.match(
      pwNet,
      { bridge, subnet: '10.252.60.0/24', gateway: '10.252.60.1', masquerade: true },
      'pipewright network ls shows the Docker network',
    );
    t.match(await must('ip', ['-br', 'addr', 'show', bridge]), /10\.252\.60\.1\/24/, 'the bridge holds the gateway');

    const a = await container(t, ['--network', net, '--ip', '10.252.60.5', '-p', '18090:8080']);
    t.equal(a.r.exitCode, 0, a.r.stderr);
    const b = await container(t, ['--network', net]);
    t.equal(b.r.exitCode, 0, b.r.stderr);
    const ia = await inspectOf(a.name);
    t.equal(ia.NetworkSettings.Networks[net].IPAddress, '10.252.60.5', '--ip is the address');
    t.equal(
      (await sh('docker', ['exec', b.name, 'ping', '-c', '1', '-W', '2', '10.252.60.5'])).exitCode,
      0,
      'b pings a',
    );
    const ls = await json(dir, ['ls']);
    t.equal(ls.length, 2, 'pipewright ls lists both endpoints');
    t.ok(
      ls.every((r: { hostInterface: string; status: string }) => r.hostInterface === bridge && r.status === 'ok'),
      'on the bridge, ok',
    );
    const recA = ls.find((r: { addresses: string[] }) => r.addresses.includes('10.252.60.5/24'));
    t.equal(recA?.mac, ia.NetworkSettings.Networks[net].MacAddress, 'the recorded MAC is the MAC Docker shows');

    await peerServer(t, `pid:${(await inspectOf(a.name)).State.Pid}`, 'tcp', 8080);
    t.equal(await askPeer(null, 'tcp', '127.0.0.1', 18090), '10.252.60.1', "-p answers on the host's 127.0.0.1");
    const [client, clientBridge] = [await netns(t), uniq('b')];
    removeLinkAtEnd(t, clientBridge);
    for (const args of [
      ['pool', 'create', 'pc', '10.252.62.0/24'],
      ['network', 'create', 'nc', '--bridge', clientBridge, '--pool', 'pc'],
      ['attach', clientBridge, client, 'pool:pc'],
    ]) {
      t.equal((await cli(dir, args)).exitCode, 0, args.join(' '));
    }
    t.equal(
      await askPeer(client, 'tcp', '10.252.62.1', 18090),
      '10.252.62.2',
      '-p answers from another netns, its address kept',
    );
    t.match(
      await json(dir, ['ports']),
      [{ publish: '18090:8080/tcp', ctrIp: '10.252.60.5' }],
      'pipewright ports lists it',
    );
    const hairpin = await sh('docker', ['exec', b.name, 'nc', '-w', '2', '10.252.60.1', '18090']);
    t.equal(hairpin.stdout.trim(), '10.252.60.1', 'a neighbour reaches it through the host (hairpin, masqueraded)');

    t.equal((await cli(dir, ['detach', client])).exitCode, 0);
    t.equal((await cli(dir, ['network', 'rm', 'nc'])).exitCode, 0);
    await must('docker', ['rm', '-f', a.name, b.name]);
    t.ok(await endpointsGone(dir), "removed containers' endpoints are gone");
    await must('docker', ['network', 'rm', net]);
    t.same(await json(dir, ['network', 'ls']), [], 'docker network rm removes the pipewright network');
    t.same(await json(dir, ['lease', 'ls']), [], 'and every lease');
    t.same(await hostLinks(), linksBefore, 'no link is left');
    t.equal(await firewallSnapshot(), before, 'the firewall is as it was');
  },
);

t.test(
  'network driver: a dual-stack network (--ipv6): --ip6 honoured, the bridge holds both gateways, containers reach each other over IPv6',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const { net, bridge } = await pwNetwork(t, ['--ipv6', '--subnet', '10.252.67.0/24', '--subnet', 'fd77:63::/64']);
    const configs = JSON.parse(await must('docker', ['network', 'inspect', net]))[0].IPAM.Config.map(
      (c: { Subnet: string }) => c.Subnet,
    );
    t.same(configs.sort(), ['10.252.67.0/24', 'fd77:63::/64'], 'docker network inspect shows both subnets');
    t.match(await json(dir, ['network', 'ls']), [
      { subnet: '10.252.67.0/24', subnet6: 'fd77:63::/64', gateway6: 'fd77:63::1' },
    ]);
    t.match(
      await must('ip', ['-br', 'addr', 'show', bridge]),
      /10\.252\.67\.1\/24.*fd77:63::1\/64/,
      'the bridge holds both gateways',
    );
    const a = await container(t, ['--network', net, '--ip6', 'fd77:63::5']);
    t.equal(a.r.exitCode, 0, a.r.stderr);
    const b = await containerWithMac(t, net, '02:42:aa:bb:cc:01');
    t.equal(
      (await inspectOf(b.name)).NetworkSettings.Networks[net].MacAddress,
      '02:42:aa:bb:cc:01',
      '--mac-address honoured',
    );
    t.match(
      await must('docker', ['exec', b.name, 'cat', '/sys/class/net/eth0/address']),
      /^02:42:aa:bb:cc:01/,
      'the container link has it',
    );
    const settings = (await inspectOf(a.name)).NetworkSettings.Networks[net];
    t.equal(settings.GlobalIPv6Address, 'fd77:63::5', '--ip6 is the address');
    t.equal(settings.IPv6Gateway, 'fd77:63::1', 'and the gateway the network gave');
    t.equal(
      (await sh('docker', ['exec', b.name, 'ping', '-6', '-c', '1', '-W', '2', 'fd77:63::5'])).exitCode,
      0,
      'b pings a over IPv6',
    );
    t.equal(
      (await sh('docker', ['exec', a.name, 'ping', '-6', '-c', '1', '-W', '2', 'fd77:63::1'])).exitCode,
      0,
      'a reaches its IPv6 gateway',
    );
    const leases = (await json(dir, ['lease', 'ls'])).map((l: { address: string }) => l.address);
    t.ok(leases.includes('fd77:63::5'), 'the IPv6 address is a pipewright lease');
    await must('docker', ['rm', '-f', a.name, b.name]);
    await must('docker', ['network', 'rm', net]);
    t.same(await json(dir, ['network', 'ls']), []);
    t.same(await json(dir, ['lease', 'ls']), [], 'every lease released');
    t.same(await json(dir, ['pool', 'ls']), [], 'both pools made for the network are gone');
  },
);

t.test(
  'network driver: a macvlan network on a NIC (-o parent=), the host reaching it through its shim, -o mtu=',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const parent = await nicPair(t, 'p');
    const [before, linksBefore] = [await firewallSnapshot(), await hostLinks()];
    const net = uniq('n');
    const opts = ['-o', `parent=${parent}`, '-o', 'host_shim=10.252.70.254/24', '-o', 'mtu=1400'];
    const made = await dockerNetworkCreate(net, { driver: DRIVER, ipam: DRIVER, subnet: '10.252.70.0/24', opts });
    t.equal(made.exitCode, 0, made.stderr);
    t.teardown(() => sh('docker', ['network', 'rm', net]));
    t.match(await json(dir, ['network', 'ls']), [
      { kind: 'macvlan', bridge: parent, mtu: 1400, hostShim: '10.252.70.254/24', masquerade: false },
    ]);
    const shim = (await hostLinks()).find((l) => !linksBefore.includes(l))!;
    t.match(
      await must('ip', ['-d', 'addr', 'show', shim]),
      new RegExp(`${shim}@${parent}:[\\s\\S]*macvlan mode bridge[\\s\\S]*10\\.252\\.70\\.254/24`),
      'the shim on the parent holds its address',
    );

    const a = await container(t, ['--network', net, '--ip', '10.252.70.5']);
    t.equal(a.r.exitCode, 0, a.r.stderr);
    const b = await container(t, ['--network', net]);
    t.equal(b.r.exitCode, 0, b.r.stderr);
    t.equal(
      (await must('docker', ['exec', a.name, 'cat', '/sys/class/net/eth0/mtu'])).trim(),
      '1400',
      'the container link has the MTU',
    );
    t.equal(
      (await sh('docker', ['exec', b.name, 'ping', '-c', '1', '-W', '2', '10.252.70.5'])).exitCode,
      0,
      'b pings a on the macvlan network',
    );
    t.equal(
      (await sh('ping', ['-c', '1', '-W', '2', '10.252.70.5'])).exitCode,
      0,
      'the host reaches a through the shim',
    );
    t.same(await hostLinks(), [...linksBefore, shim], 'nothing of the containers is left in the host');
    const ls = await json(dir, ['ls']);
    t.match(ls, [
      { kind: 'macvlan', hostInterface: parent, status: 'ok' },
      { kind: 'macvlan', hostInterface: parent, status: 'ok' },
    ]);
    const published = await container(t, ['--network', net, '-p', '18095:80']);
    t.not(published.r.exitCode, 0, '-p on a macvlan network is refused');
    t.match(published.r.stderr, /a macvlan network publishes no ports/);
    t.equal(await firewallSnapshot(), before, 'a macvlan network adds no firewall rule');

    await must('docker', ['rm', '-f', a.name, b.name, published.name]);
    t.ok(await endpointsGone(dir), "removed containers' endpoints are gone");
    await must('docker', ['network', 'rm', net]);
    t.same(await json(dir, ['network', 'ls']), []);
    t.same(await hostLinks(), linksBefore, 'no link is left, the shim neither');
    t.equal(await firewallSnapshot(), before);
  },
);

t.test(
  'network driver: the address is there before the command runs, and after docker restart, with its MAC',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    // Docker's own IPAM: no MAC is chosen before the driver is asked, so the driver derives it from the address.
    const { net } = await pwNetwork(
      t,
      ['--subnet', '10.252.61.0/24', '-o', 'masquerade=false', '-o', 'mtu=1450'],
      'default',
    );
    // The command fails (exit 3) unless eth0 already holds its address, and the network's MTU, when it starts.
    const check = [
      'sh',
      '-c',
      'ip -4 addr show eth0 | tr "\n" " " | grep -q "mtu 1450.*inet 10.252.61.9/24" || exit 3; exec sleep 600',
    ];
    const c = await container(t, ['--network', net, '--ip', '10.252.61.9'], check);
    t.equal(c.r.exitCode, 0, c.r.stderr);
    const first = (await inspectOf(c.name)).NetworkSettings.Networks[net];
    t.equal((await inspectOf(c.name)).State.Running, true, 'the command found its address at start');
    t.equal((await sh('docker', ['restart', '-t', '0', c.name])).exitCode, 0);
    const again = await inspectOf(c.name);
    t.equal(again.State.Running, true, 'and again after docker restart');
    t.equal(again.NetworkSettings.Networks[net].IPAddress, '10.252.61.9');
    t.equal(first.MacAddress, '02:42:0a:fc:3d:09', "the MAC is the address's, as Docker's bridge makes it");
    t.equal(again.NetworkSettings.Networks[net].MacAddress, first.MacAddress, 'the MAC is kept');
    t.equal((await json(dir, ['ls'])).length, 1, 'one endpoint, not one per start');
    t.match(
      (await json(dir, ['network', 'ls']))[0],
      { masquerade: false, mtu: 1450 },
      '-o masquerade=false, -o mtu=1450',
    );
    const bad = await sh('docker', ['network', 'create', '-d', DRIVER, '-o', 'colour=blue', uniq('n')]);
    t.not(bad.exitCode, 0);
    t.match(
      bad.stderr,
      /-o colour: a pipewright bridge network takes the options bridge, masquerade, isolated, mtu/,
      'an unknown option is refused in one line',
    );
  },
);

t.test(
  "docker restart keeps the container's address, as with Docker's own IPAM (the lowest free one)",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const { net } = await pwNetwork(t, ['--subnet', '10.252.69.0/24']);
    const c = await container(t, ['--network', net]);
    t.equal(c.r.exitCode, 0, c.r.stderr);
    const first = await ipOf(c.name);
    t.equal(first, '10.252.69.2', 'the first free address after the gateway');
    const seen = [];
    for (let i = 0; i < 3; i++) {
      t.equal((await sh('docker', ['restart', '-t', '0', c.name])).exitCode, 0);
      seen.push(await ipOf(c.name));
    }
    t.same(seen, [first, first, first], `the same address at each restart (${seen.join(', ')})`);
    const other = await container(t, ['--network', net]);
    t.equal(other.r.exitCode, 0, other.r.stderr);
    t.equal(await ipOf(other.name), '10.252.69.3', 'another container gets the next one');
    const leases = (await json(dir, ['lease', 'ls'])).map((l: { address: string }) => l.address).sort();
    t.same(leases, ['10.252.69.1', '10.252.69.2', '10.252.69.3'], 'one lease each, none left from the restarts');
    await must('docker', ['rm', '-f', c.name, other.name]);
  },
);

/** The neighbour entry (`ip neigh`) a container's namespace holds for an address: its MAC, or '' without one. */
async function neighbourMac(ctr: string, address: string): Promise<string> {
  const pid = String((await inspectOf(ctr)).State.Pid);
  const shown = await must('nsenter', ['-t', pid, '-n', 'ip', 'neigh', 'show', address]);
  return /lladdr (\S+)/.exec(shown)?.[1] ?? '';
}

t.test(
  'docker restart: the address at its new MAC is announced, peers and the host reach it at once',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const { net, bridge } = await pwNetwork(t, ['--subnet', '10.252.71.0/24']);
    const [peer, c] = [await container(t, ['--network', net]), await container(t, ['--network', net])];
    const address = await ipOf(c.name);
    const macOf = async () => (await inspectOf(c.name)).NetworkSettings.Networks[net].MacAddress as string;
    const before = await macOf();
    t.equal((await sh('docker', ['exec', peer.name, 'ping', '-c', '1', '-W', '2', address])).exitCode, 0);
    t.equal((await sh('ping', ['-c', '1', '-W', '2', address])).exitCode, 0, 'the host pings it');
    t.equal(await neighbourMac(peer.name, address), before, "the peer's entry holds the first MAC");

    t.equal((await sh('docker', ['restart', '-t', '0', c.name])).exitCode, 0);
    const after = await macOf();
    t.equal(await ipOf(c.name), address, 'the same address');
    t.not(after, before, "a new MAC (pipewright's IPAM asks Docker for one at each start)");
    t.equal(await neighbourMac(peer.name, address), after, "the peer's entry holds the new MAC at once");
    const host = await must('ip', ['neigh', 'show', address, 'dev', bridge]);
    t.match(host, `lladdr ${after}`, "the host's entry holds the new MAC");
    const started = Date.now();
    t.equal((await sh('docker', ['exec', peer.name, 'ping', '-c', '1', '-W', '1', address])).exitCode, 0);
    t.equal((await sh('ping', ['-c', '1', '-W', '1', address])).exitCode, 0, 'the host reaches it');
    t.ok(Date.now() - started < 2000, `both answered at their first ping (${Date.now() - started} ms)`);
    await must('docker', ['rm', '-f', c.name, peer.name]);
  },
);

t.test(
  "network driver: a reboot took the network's bridge: the container's next start makes it again, its gateway on it",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const { net, bridge } = await pwNetwork(t, ['--subnet', '10.252.62.0/24', '--gateway', '10.252.62.1']);
    const c = await container(t, ['--network', net, '--ip', '10.252.62.5']);
    t.equal(c.r.exitCode, 0, c.r.stderr);
    await must('docker', ['stop', '-t', '0', c.name]);
    await must('ip', ['link', 'del', bridge]); // what a reboot does to it; Docker does not create its networks again
    const started = await sh('docker', ['start', c.name]);
    t.equal(started.exitCode, 0, started.stderr);
    t.match(
      await must('ip', ['-4', '-o', 'address', 'show', bridge]),
      /inet 10\.252\.62\.1\/24/,
      'the bridge is back with the gateway',
    );
    t.equal(
      (await sh('docker', ['exec', c.name, 'ping', '-c', '1', '-W', '2', '10.252.62.1'])).exitCode,
      0,
      'the container reaches its gateway',
    );
    t.equal((await sh('ping', ['-c', '1', '-W', '2', '10.252.62.5'])).exitCode, 0, 'the host reaches the container');
  },
);

t.test('network driver: -o rate= shapes every endpoint, --driver-opt rate= one of its own', { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  const { net } = await pwNetwork(t, [
    '--subnet',
    '10.252.66.0/24',
    '--gateway',
    '10.252.66.1',
    '-o',
    'rate=8mbit/4mbit',
  ]);
  const a = await container(t, ['--network', net]);
  t.equal(a.r.exitCode, 0, a.r.stderr);
  // Created off every network, then connected with an option of its own (as docker run --network name=,driver-opt=).
  const b = uniq('c');
  t.teardown(() => sh('docker', ['rm', '-f', b]));
  await must('docker', ['create', '--name', b, '--network', 'none', TEST_IMAGE, 'sleep', '600']);
  await must('docker', ['network', 'disconnect', 'none', b]);
  await must('docker', ['network', 'connect', '--driver-opt', 'rate=2mbit', net, b]);
  await must('docker', ['start', b]);
  const tc = async (args: string[]) => JSON.parse(await must('tc', ['-j', ...args]));
  const ls: { addresses: string[]; hostLink: string; rate: string | null }[] = await json(dir, ['ls']);
  const ipA = await ipOf(a.name);
  const ofA = ls.find((r) => r.addresses[0]!.startsWith(`${ipA}/`))!;
  const ofB = ls.find((r) => r !== ofA)!;
  t.equal(ofA.rate, '8mbit/4mbit', "a has the network's limits");
  t.equal((await tc(['qdisc', 'show', 'dev', ofA.hostLink, 'root']))[0].options.rate * 8, 8e6);
  const [redirect] = (await tc(['filter', 'show', 'dev', ofA.hostLink, 'ingress'])).flatMap(
    (f: { options?: { actions?: { to_dev: string }[] } }) => f.options?.actions ?? [],
  );
  t.equal((await tc(['qdisc', 'show', 'dev', redirect.to_dev, 'root']))[0].options.rate * 8, 4e6, 'and its ifb');
  t.equal(ofB.rate, '2mbit', "b has its endpoint's own");
  t.equal((await tc(['qdisc', 'show', 'dev', ofB.hostLink, 'root']))[0].options.rate * 8, 2e6);
  t.same(await tc(['filter', 'show', 'dev', ofB.hostLink, 'ingress']), [], 'b: out of the container unlimited');
  await must('docker', ['rm', '-f', a.name, b]);
  t.ok(await endpointsGone(dir));
  t.notOk((await hostLinks()).includes(redirect.to_dev), "the ifb went with a's endpoint");
});

t.test('network driver: the daemon killed between calls loses nothing', { skip }, async (t) => {
  const dir = stateDir(t);
  const { proc } = await daemon(t, dir);
  const { net } = await pwNetwork(t, ['--subnet', '10.252.63.0/24']);
  const a = await container(t, ['--network', net]);
  t.equal(a.r.exitCode, 0, a.r.stderr);
  proc.kill('SIGKILL');
  await proc;
  await daemon(t, dir);
  const b = await container(t, ['--network', net]);
  t.equal(b.r.exitCode, 0, b.r.stderr);
  const ip = (await inspectOf(a.name)).NetworkSettings.Networks[net].IPAddress;
  t.equal(
    (await sh('docker', ['exec', b.name, 'ping', '-c', '1', '-W', '2', ip])).exitCode,
    0,
    'a container started after the restart reaches one from before',
  );
  t.not((await inspectOf(b.name)).NetworkSettings.Networks[net].IPAddress, ip, 'no address handed out twice');
  // An endpoint Docker forgot (its container removed while the daemon was down): b's record, made to name another.
  const bEndpoint = (await inspectOf(b.name)).NetworkSettings.Networks[net].EndpointID;
  const store = Store.open(dir);
  store.db.prepare(`UPDATE attachments SET guest_id = replace(guest_id, ?, ?)`).run(bEndpoint, 'e'.repeat(64));
  store.close();
  const gc = await json(dir, ['gc']);
  t.match(
    gc,
    [{ kind: 'attachment', reason: 'guest no longer exists' }],
    'gc undoes the endpoint Docker does not know',
  );
  t.equal(gc.length, 1, "and keeps the one it knows (a's)");
  await must('docker', ['rm', '-f', a.name, b.name]);
  t.ok(await endpointsGone(dir));
  await must('docker', ['network', 'rm', net]); // while this daemon runs (the first one's teardown is older)
});

t.test(
  'network driver: DeleteEndpoint answers before the link is gone; a daemon killed then leaves it to the next',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const first = await startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', ''], {
      PIPEWRIGHT_FAULT: 'endpoint removal answered:crash',
    });
    const { net, bridge } = await pwNetwork(t, ['--subnet', '10.252.68.0/24']);
    const portsBefore = await sh('ls', [`/sys/class/net/${bridge}/brif`]);
    const run = sh('docker', ['run', '--rm', '--network', net, TEST_IMAGE, 'true']);
    t.equal((await first.proc).signal, 'SIGKILL', 'the daemon died right after answering DeleteEndpoint');
    const [left] = await json(dir, ['ls']);
    t.match(left, { status: /pending|stale|missing/ }, 'its record is still there, pending');
    const hostLink = left.hostLink as string;
    t.ok(existsSync(`/sys/class/net/${hostLink}`), 'and so is its link');
    // Docker retries its next call (the IPAM release) until a daemon answers again.
    const second = await daemon(t, dir);
    const ran = await run;
    t.equal(ran.exitCode, 0, `docker run --rm: the container ran and went (${ran.stderr.trim()})`);
    t.ok(
      second.lines().some((l) => l.includes('"finished"')),
      'the next daemon finishes the removal when it starts',
    );
    t.same(await json(dir, ['ls']), [], 'no record left');
    t.notOk(existsSync(`/sys/class/net/${hostLink}`), 'no link left');
    t.equal(
      (await sh('ls', [`/sys/class/net/${bridge}/brif`])).stdout,
      portsBefore.stdout,
      'the bridge has the ports it had',
    );
    // With a daemon that lives: a container after another, and the network removed right after the last.
    for (let i = 0; i < 3; i++)
      t.equal((await sh('docker', ['run', '--rm', '--network', net, TEST_IMAGE, 'true'])).exitCode, 0);
    t.equal((await sh('docker', ['network', 'rm', net])).exitCode, 0, 'docker network rm waits for the last removal');
    t.same(await json(dir, ['ls']), [], 'so nothing is left once it returns');
    t.same(await json(dir, ['network', 'ls']), []);
  },
);

for (const [step, subnet] of [
  ['firewall for', '10.252.73'],
  ['endpoint join', '10.252.74'],
]) {
  t.test(
    `a daemon killed -9 at "${step}" while a container starts: docker network rm still removes everything`,
    { skip },
    async (t) => {
      const dir = stateDir(t);
      const first = await startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', ''], {
        PIPEWRIGHT_FAULT: `${step}:crash`,
      });
      const { net, bridge } = await pwNetwork(t, ['--subnet', `${subnet}.0/24`]);
      const name = uniq('c');
      t.teardown(() => sh('docker', ['rm', '-f', name]));
      const run = sh('docker', ['run', '-d', '--name', name, '--network', net, TEST_IMAGE, 'sleep', '600']);
      t.equal((await first.proc).signal, 'SIGKILL', `the daemon died at "${step}"`);
      await daemon(t, dir);
      t.comment(`docker run: exit ${(await run).exitCode}`);
      await must('docker', ['rm', '-f', name]);
      const rm = await sh('docker', ['network', 'rm', net]);
      t.equal(rm.exitCode, 0, rm.stderr);
      t.notOk(existsSync(`/sys/class/net/${bridge}`), `the bridge ${bridge} is gone`);
      t.same(await json(dir, ['network', 'ls']), [], 'so is the network record');
      t.same(await json(dir, ['ls']), [], 'and every endpoint record');
      t.same(await json(dir, ['lease', 'ls']), [], 'every lease released');
      t.same(await json(dir, ['pool', 'ls']), [], "and the network's pool removed");
      t.same(await json(dir, ['gc']), [], 'gc finds nothing left');
    },
  );
}

t.test(
  'gc removes a network Docker no longer has (its DeleteNetwork failed), its bridge and records; not while the engine is unknown',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    // The daemon fails Docker's DeleteNetwork: Docker removes the network all the same.
    await startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', ''], {
      PIPEWRIGHT_FAULT: 'network rm docker-:fail',
    });
    const { net, bridge } = await pwNetwork(t, ['--subnet', '10.252.75.0/24'], 'default');
    t.equal((await sh('docker', ['network', 'rm', net])).exitCode, 0, 'docker network rm succeeds for Docker');
    t.equal((await json(dir, ['network', 'ls'])).length, 1, "the daemon's record is left");
    t.same(
      await json(dir, ['gc']),
      [],
      'a network made less than a minute ago is left alone (Docker may not list it yet)',
    );
    const store = Store.open(dir);
    store.db.prepare(`UPDATE networks SET created_at = '2020-01-01T00:00:00.000Z'`).run();
    store.close();
    const unknown = await json(dir, ['gc'], { DOCKER_HOST: 'unix:///run/pipewright-test-no-docker.sock' });
    t.same(unknown, [], 'no engine answers: gc leaves the network alone');
    t.equal((await json(dir, ['network', 'ls'])).length, 1);
    t.match(
      await json(dir, ['gc']),
      [{ kind: 'network', target: `docker-`, reason: 'Docker has no such network' }],
      'gc removes it',
    );
    t.same(await json(dir, ['network', 'ls']), [], 'its record is gone');
    t.notOk(existsSync(`/sys/class/net/${bridge}`), 'and its bridge');
    t.same(await json(dir, ['pool', 'ls']), [], 'and the pool made for it');
  },
);

t.test(
  "Docker's port bindings with a forged HostIP or port: one-line refusals, the firewall untouched (audit #18)",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const [NetworkID, EndpointID, bridge] = [
      randomBytes(32).toString('hex'),
      randomBytes(32).toString('hex'),
      uniq('b'),
    ];
    removeLinkAtEnd(t, bridge);
    const made = await post('NetworkDriver.CreateNetwork', {
      NetworkID,
      IPv4Data: [{ AddressSpace: 'x', Pool: '10.252.76.0/24', Gateway: '10.252.76.1/24' }],
      Options: { 'com.docker.network.generic': { bridge } },
    });
    t.same(made, {});
    t.teardown(() => post('NetworkDriver.DeleteNetwork', { NetworkID }));
    t.match(
      await post('NetworkDriver.CreateEndpoint', { NetworkID, EndpointID, Interface: { Address: '10.252.76.2/24' } }),
      { Interface: {} },
    );
    const before = await firewallSnapshot();
    const program = (binding: object) =>
      post('NetworkDriver.ProgramExternalConnectivity', {
        NetworkID,
        EndpointID,
        Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 18096, ...binding }] },
      });
    for (const binding of [
      { HostIP: '1.2.3.4\n-A INPUT -j ACCEPT' },
      { HostIP: '1.2.3.4 } ; flush ruleset ; {' },
      { Port: 'NaN' },
      { Port: 70000 },
    ]) {
      const { Err } = await program(binding);
      t.match(Err, /^Docker's port binding \{.*\} is refused: [^\n]*$/, `${JSON.stringify(binding)}: ${Err}`);
    }
    t.equal(await firewallSnapshot(), before, 'the firewall is as it was');
    t.same(await json(dir, ['ports']), [], 'no port recorded');
    t.same(await program({}), {}, 'a good binding is published');
    t.match(await json(dir, ['ports']), [{ publish: '18096:80/tcp' }]);
    await post('NetworkDriver.DeleteEndpoint', { NetworkID, EndpointID });
    t.ok(await endpointsGone(dir));
  },
);

t.test('network driver: a compose file brings up two services on a pipewright network', { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  const project = uniq('p');
  const file = join(dir, 'compose.yaml');
  writeFileSync(
    file,
    [
      'services:',
      ...['a', 'b'].flatMap((s) => [`  ${s}:`, `    image: ${TEST_IMAGE}`, '    command: ["sleep", "600"]']),
      'networks:',
      '  default:',
      `    driver: ${DRIVER}`,
      `    driver_opts: { bridge: ${uniq('b')} }`,
      `    ipam: { driver: ${DRIVER}, config: [{ subnet: 10.252.64.0/24 }] }`,
    ].join('\n'),
  );
  const compose = (...args: string[]) => sh('docker-compose', ['-f', file, '-p', project, ...args]);
  t.teardown(() => compose('down', '-t', '0'));
  const up = await compose('up', '-d');
  t.equal(up.exitCode, 0, up.stderr);
  const ip = async (svc: string) =>
    ipOf((await must('docker-compose', ['-f', file, '-p', project, 'ps', '-q', svc])).trim());
  t.match(await ip('a'), /^10\.252\.64\.\d+$/, 'the service has an address from the pool');
  t.equal((await compose('exec', '-T', 'b', 'ping', '-c', '1', '-W', '2', await ip('a'))).exitCode, 0, 'b pings a');
  t.equal((await json(dir, ['ls'])).length, 2, 'two endpoints');
  const down = await compose('down', '-t', '0');
  t.equal(down.exitCode, 0, down.stderr);
  t.same(await json(dir, ['network', 'ls']), [], 'compose down removes the pipewright network');
  t.same(await json(dir, ['lease', 'ls']), []);
});

t.test(
  'the daemon also does what watch does: a --net=none container attached by the CLI is restored after docker restart',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const br = uniq('b');
    removeLinkAtEnd(t, br);
    const c = await container(t, ['--net=none']);
    t.equal(c.r.exitCode, 0, c.r.stderr);
    t.equal((await cli(dir, ['attach', br, `docker:${c.name}`, '10.252.65.2/24'])).exitCode, 0);
    await must('docker', ['restart', '-t', '0', c.name]);
    const restored = async () =>
      (await sh('docker', ['exec', c.name, 'ip', '-4', 'addr', 'show', 'eth0'])).stdout.includes('10.252.65.2/24');
    t.ok((await until(restored, 5000)) >= 0, 'the daemon put the interface back within 5 s');
    await must('docker', ['rm', '-f', c.name]);
    t.ok(
      (await until(async () => (await json(dir, ['ls'])).length === 0, 5000)) >= 0,
      'and cleaned up after the removal',
    );
  },
);

t.test(
  'network driver: dockerd restarted under a container on a pipewright network',
  {
    skip:
      skip ||
      (!process.env.PIPEWRIGHT_TEST_RESTART_DOCKERD &&
        'restarts dockerd: only when scripts/test.sh started it (PIPEWRIGHT_TEST_RESTART_DOCKERD=1)'),
  },
  async (t) => {
    const dir = stateDir(t);
    await daemon(t, dir);
    const { net } = await pwNetwork(t, ['--subnet', '10.252.66.0/24']);
    const c = await container(t, ['--network', net, '--ip', '10.252.66.4', '--restart', 'always']);
    t.equal(c.r.exitCode, 0, c.r.stderr);
    await must('pkill', ['-x', 'dockerd']);
    t.ok(
      (await until(async () => (await sh('pgrep', ['-x', 'dockerd'])).exitCode !== 0, 30_000)) >= 0,
      'the engine stopped',
    );
    await execa('sh', ['-c', 'dockerd >> "$0" 2>&1 &', process.env.PIPEWRIGHT_TEST_DOCKERD_LOG ?? '/dev/null']);
    t.ok((await until(dockerUp, 30_000)) >= 0, 'the engine is back');
    const running = async () =>
      (await sh('docker', ['inspect', '-f', '{{.State.Running}}', c.name])).stdout.trim() === 'true';
    t.ok((await until(running, 30_000)) >= 0, 'the container was started again by its policy');
    const ip = async () =>
      (await sh('docker', ['exec', c.name, 'ip', '-4', 'addr', 'show', 'eth0'])).stdout.includes('10.252.66.4/24');
    t.ok((await until(ip, 5000)) >= 0, 'with its address');
    const other = await container(t, ['--network', net]);
    t.equal(
      (await sh('docker', ['exec', other.name, 'ping', '-c', '1', '-W', '2', '10.252.66.4'])).exitCode,
      0,
      'and reachable',
    );
    t.equal((await json(dir, ['ls'])).length, 2, 'one endpoint each, none left from before the restart');
    t.same(await json(dir, ['gc']), [], 'gc finds nothing to undo');
    await must('docker', ['rm', '-f', c.name, other.name]);
  },
);
