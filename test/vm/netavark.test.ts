/**
 * pipewright as a netavark plugin under Podman 5.4 / netavark 1.14, in the Debian 13 environment
 * of test/vm/trixie.ts (a debootstrapped root, chrooted in a private mount namespace and a network
 * namespace of its own): `podman network create -d pipewright` (bridge and macvlan), a container
 * with its pool address before its command runs, `-p`, teardown and `podman network rm` leaving
 * nothing, netavark's error format, and a kill -9 at each step of setup and teardown leaving
 * nothing after the next teardown or `gc`.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { CHECKOUT, rootForTests, TrixieEnv } from './trixie.js';

await rootForTests(t);

const PW = `${CHECKOUT}/dist/bin/pipewright`;
const PLUGIN = `${CHECKOUT}/dist/netavark-plugin/pipewright`;
const IMAGE = 'localhost/pwtest';
const started = Date.now();
const env = await TrixieEnv.start();
t.teardown(async () => {
  await env.run('podman', ['rm', '-f', '-a', '-t', '0']);
  await env.stop();
  t.comment(`environment up and down, tests included: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

const sh = (script: string, e: Record<string, string> = {}) => env.run('/bin/sh', ['-c', script], { env: e });
/** podman with a command line split at spaces, and one last argument kept whole (a shell script). */
const podman = (line: string, last?: string) => env.must('podman', [...line.split(' '), ...(last ? [last] : [])]);
const json = async (args: string[]) => JSON.parse(await env.must(PW, [...args, '--json'])) as unknown[];

// The plugin where netavark looks (containers.conf netavark_plugin_dirs' first default); podman
// without systemd; a busybox image of the root's own busybox; a LAN for macvlans: pwt0 (the
// parent) cabled to pwt1, which holds the "router" 192.168.77.1.
await env.must('/bin/sh', [
  '-c',
  `set -e
mkdir -p /usr/local/libexec/netavark && ln -sf ${PLUGIN} /usr/local/libexec/netavark/pipewright
printf '[containers]\\ncgroups = "disabled"\\n[engine]\\ncgroup_manager = "cgroupfs"\\nevents_logger = "file"\\n' >/etc/containers/containers.conf
mkdir -p /tmp/img/bin /tmp/img/tmp && chmod 1777 /tmp/img/tmp && cp /bin/busybox /tmp/img/bin/
for a in $(busybox --list); do [ "$a" = busybox ] || ln -s busybox /tmp/img/bin/$a; done
tar -C /tmp/img -c . | podman import -q --change 'CMD ["/bin/sh"]' - ${IMAGE} >/dev/null
ip link add pwt0 type veth peer name pwt1
ip link set pwt0 up && ip address add 192.168.77.1/24 dev pwt1 && ip link set pwt1 up`,
]);

/** What pipewright holds in the environment: records, pools, leases, its links and its firewall's entries. */
async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  for (const what of [['ls'], ['network', 'ls'], ['pool', 'ls'], ['lease', 'ls']])
    for (const item of await json(what)) out.push(`${what.join(' ')}: ${JSON.stringify(item)}`);
  const links = JSON.parse(await env.must('ip', ['-j', 'link'])) as { ifname: string }[];
  for (const l of links) if (!['lo', 'pwt0', 'pwt1'].includes(l.ifname)) out.push(`link ${l.ifname}`);
  const rules = (await env.run('nft', ['list', 'table', 'ip', 'pipewright'])).stdout;
  for (const line of rules.split('\n').filter((l) => /elements =|"pw/.test(l))) out.push(`nft: ${line.trim()}`);
  return out;
}

t.test('podman network create -d pipewright: a bridge network, the address before the command', async (t) => {
  await env.must('podman', ['network', 'create', '-d', 'pipewright', '--subnet', '10.89.7.0/24', 'pwbr']);
  t.teardown(() => env.run('podman', ['network', 'rm', '-f', 'pwbr']));
  const [net] = JSON.parse(await env.must('podman', ['network', 'inspect', 'pwbr'])) as {
    id: string;
    driver: string;
    network_interface: string;
    ipam_options: { driver: string };
    subnets: { gateway: string }[];
  }[];
  t.equal(net.driver, 'pipewright');
  t.equal(net.ipam_options.driver, 'none', 'podman leaves the addresses to the pool');
  t.equal(net.network_interface, `pw${net.id.slice(0, 12)}`);
  t.same(await leftovers(), [], 'create makes nothing on the host');

  const first = await env.must('podman', [
    'run',
    '--rm',
    '--network',
    'pwbr',
    IMAGE,
    'ip',
    '-4',
    '-o',
    'addr',
    'show',
    'eth0',
  ]);
  t.match(first, /inet 10\.89\.7\.2\/24 /, 'the first pool address, before the command ran');
  t.same(await leftovers(), [], '--rm: the last teardown took bridge, pool and rules');

  // -p: a web server on a published port, reached through the host's own address.
  await env.must('podman', [
    'run',
    '-d',
    '--name',
    'web',
    '--network',
    'pwbr',
    '-p',
    '8080:80',
    IMAGE,
    'sh',
    '-c',
    'echo hello-netavark >/tmp/index.html; exec httpd -f -p 80 -h /tmp',
  ]);
  const [att] = (await json(['ls'])) as { addresses: string[]; hostInterface: string; status: string }[];
  t.equal(att.status, 'ok');
  t.equal(att.hostInterface, net.network_interface);
  const leases = (await json(['lease', 'ls'])) as { address: string; pool: string }[];
  t.same(
    leases.map((l) => [l.pool, l.address]),
    [[`podman-${net.id.slice(0, 12)}`, '10.89.7.2']],
  );
  const inspect = JSON.parse(
    await env.must('podman', ['inspect', 'web', '--format', '{{json .NetworkSettings.Networks}}']),
  );
  t.equal(inspect.pwbr.IPAddress, '10.89.7.2', "podman shows the plugin's status block");
  t.equal(inspect.pwbr.Gateway, '10.89.7.1');
  let page = '';
  for (let i = 0; i < 20 && !page.includes('hello'); i++) {
    page = (await env.run('busybox', ['wget', '-q', '-T', '2', '-O', '-', 'http://192.168.77.1:8080/index.html']))
      .stdout;
    if (!page.includes('hello')) await new Promise((r) => setTimeout(r, 250));
  }
  t.match(page, /hello-netavark/, '-p 8080:80 reaches the container');
  t.match(await env.must('nft', ['list', 'table', 'ip', 'pipewright']), /tcp \. 8080 : 10\.89\.7\.2 \. 80/);

  const fixed = await podman(
    `run --rm --network pwbr --ip 10.89.7.50 --mac-address 02:42:0a:59:07:32 ${IMAGE} sh -c`,
    'ip -4 -o addr show eth0; cat /sys/class/net/eth0/address',
  );
  t.match(fixed, /inet 10\.89\.7\.50\/24 [^]*02:42:0a:59:07:32/, '--ip and --mac-address');
  await env.must('podman', ['rm', '-f', '-t', '0', 'web']);
  t.same(await leftovers(), [], 'rm: lease, veth, bridge, pool and rules gone');
  await env.must('podman', ['network', 'rm', 'pwbr']);
  t.same(await leftovers(), []);
});

t.test('-o parent=<nic>: a macvlan network on the LAN', async (t) => {
  await podman('network create -d pipewright --subnet 192.168.77.0/24 --gateway 192.168.77.1 -o parent=pwt0 pwmv');
  t.teardown(() => env.run('podman', ['network', 'rm', '-f', 'pwmv']));
  await podman(
    `run -d --name mv --cap-add NET_RAW --network pwmv ${IMAGE} sh -c`,
    'ip -4 -o addr show eth0; exec sleep 600',
  );
  t.match(await podman('logs mv'), /inet 192\.168\.77\.2\/24 /, 'the pool address (the gateway held back)');
  const [att] = (await json(['ls'])) as { hostInterface: string; kind: string }[];
  t.same([att.hostInterface, att.kind], ['pwt0', 'macvlan'], 'a macvlan of pwt0');
  t.match(await podman('exec mv ping -c1 -W2 192.168.77.1'), /1 (packets )?received/, 'the router on the LAN answers');
  await podman('rm -f -t 0 mv');
  t.same(await leftovers(), []);
});

t.test("-o metric= and -o rate=: the routes' metric, a tbf on the host end, an ifb out of the guest", async (t) => {
  await podman('network create -d pipewright --subnet 10.89.8.0/24 -o metric=300 -o rate=20mbit/5mbit pwqos');
  t.teardown(() => env.run('podman', ['network', 'rm', '-f', 'pwqos']));
  await podman(`run -d --name q --network pwqos ${IMAGE} sleep 600`);
  t.match(
    await podman('exec q ip route'),
    /default via 10\.89\.8\.1 dev eth0 .*metric 300/,
    'the default route has the metric',
  );
  const [att] = (await json(['ls'])) as { hostLink: string }[];
  t.match(await env.must('tc', ['qdisc', 'show', 'dev', att.hostLink]), /tbf .*rate 20Mbit/, 'into the guest: 20mbit');
  t.match(
    await env.must('tc', ['filter', 'show', 'dev', att.hostLink, 'ingress']),
    /mirred \(Egress Redirect to device pwi/,
    'out of the guest: redirected to an ifb',
  );
  await podman('rm -f -t 0 q');
  t.same(await leftovers(), [], 'no ifb, qdisc or link left');
});

t.test("errors in netavark's format, nothing made", async (t) => {
  // podman network create -d pipewright [<options>] pwbad
  const create = (...opts: string[]) => env.run('podman', ['network', 'create', '-d', 'pipewright', ...opts, 'pwbad']);
  const bad = await create();
  t.not(bad.code, 0);
  t.match(bad.stderr, /give one --subnet .* or -o pool=<pool>/);
  const parent = await create('--subnet', '10.9.0.0/24', '-o', 'parent=nope0');
  t.match(parent.stderr, /parent nope0 is not an interface of this host/);
  const option = await create('--subnet', '10.9.0.0/24', '-o', 'colour=red');
  t.match(option.stderr, /option colour is not one of pipewright's/);
  const direct = await env.run(PLUGIN, ['setup', '/run/netns/none'], { input: '{"container_id": 5}' });
  t.equal(direct.code, 1);
  t.same(JSON.parse(direct.stdout), { error: '"container_id" is missing or not a container ID' });
  const unknown = await env.run(PLUGIN, ['destroy'], { input: '' });
  t.equal(unknown.code, 1);
  t.match(JSON.parse(unknown.stdout).error, /unknown subcommand "destroy"/);
  t.same(JSON.parse(await env.must(PLUGIN, ['info'])), { version: '0.1.0', api_version: '1.0.0' });
  t.same((await env.run('podman', ['network', 'ls', '-q'])).stdout.split('\n').includes('pwbad'), false);
  t.same(await leftovers(), []);
});

/** The plugin called as netavark calls it, on a netns of the test's own. */
function execInput(id: string, ports = true): string {
  return JSON.stringify({
    container_id: id.repeat(64 / id.length),
    container_name: 'crash',
    port_mappings: ports ? [{ container_port: 80, host_port: 8081, host_ip: '', protocol: 'tcp', range: 1 }] : [],
    network: {
      name: 'pwcrash',
      id: 'c'.repeat(64),
      driver: 'pipewright',
      network_interface: 'pwcccccccccccc',
      subnets: [{ subnet: '10.89.9.0/24', gateway: '10.89.9.1' }],
      ipv6_enabled: false,
      internal: false,
      dns_enabled: false,
      ipam_options: { driver: 'none' },
      options: {},
    },
    network_options: { interface_name: 'eth0', aliases: [] },
  });
}

/** The steps of one call (on netns pwc, of container `id`), as the fault seam names them. */
async function stepsOf(command: 'setup' | 'teardown', netns = 'pwc', id = 'a'): Promise<string[]> {
  await sh('rm -f /tmp/trace');
  await env.must(PLUGIN, [command, `/run/netns/${netns}`], {
    input: execInput(id),
    env: { PIPEWRIGHT_FAULT_TRACE: '/tmp/trace' },
  });
  return [...new Set((await env.must('cat', ['/tmp/trace'])).split('\n').filter(Boolean))];
}

t.test('kill -9 at each step: nothing left after the next teardown, or gc', async (t) => {
  await env.must('ip', ['netns', 'add', 'pwc']);
  t.teardown(() => env.run('ip', ['netns', 'del', 'pwc']));
  const setupSteps = await stepsOf('setup');
  const teardownSteps = await stepsOf('teardown');
  t.ok(setupSteps.length >= 5, `setup has ${setupSteps.length} steps`);
  t.comment(`setup: ${setupSteps.join(' | ')}`);
  t.comment(`teardown: ${teardownSteps.join(' | ')}`);
  t.ok(teardownSteps.length >= 3, `teardown has ${teardownSteps.length} steps`);
  t.same(await leftovers(), []);
  const call = (command: string, e: Record<string, string> = {}) =>
    env.run(PLUGIN, [command, '/run/netns/pwc'], { input: execInput('a'), env: e });
  // "finish link" is a seam that fails only (a half-made link is deleted before the error).
  const crashable = (steps: string[]) => steps.filter((s) => !s.startsWith('finish link'));
  for (const step of crashable(setupSteps)) {
    const killed = await call('setup', { PIPEWRIGHT_FAULT: `${step}:crash` });
    t.not(killed.code, 0, `setup killed at "${step}"`);
    const after = await call('teardown');
    t.equal(after.code, 0, after.stdout);
    t.same(await leftovers(), [], `nothing left after a kill at "${step}" and teardown`);
  }
  for (const step of crashable(teardownSteps)) {
    await env.must(PLUGIN, ['setup', '/run/netns/pwc'], { input: execInput('a') });
    const killed = await call('teardown', { PIPEWRIGHT_FAULT: `${step}:crash` });
    t.not(killed.code, 0, `teardown killed at "${step}"`);
    const after = await call('teardown');
    t.equal(after.code, 0, after.stdout);
    t.same(await leftovers(), [], `nothing left after a kill at "${step}" and teardown again`);
  }
  // podman does not tear down after a failed setup: it removes the netns, and gc finds the rest.
  const mid = crashable(setupSteps)[Math.floor(crashable(setupSteps).length * 0.75)];
  await env.must('ip', ['netns', 'add', 'pwg']);
  const killed = await env.run(PLUGIN, ['setup', '/run/netns/pwg'], {
    input: execInput('a'),
    env: { PIPEWRIGHT_FAULT: `${mid}:crash` },
  });
  t.not(killed.code, 0, `setup killed at "${mid}"`);
  await env.must('ip', ['netns', 'del', 'pwg']);
  await env.must(PW, ['gc']);
  t.same(await leftovers(), [], 'nothing left after gc');
});

const stopped = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T');

t.test("a network's first setup and its last teardown at once: the setup keeps its network", async (t) => {
  await env.must('/bin/sh', ['-c', 'ip netns add pwr1 && ip netns add pwr2']);
  t.teardown(() => env.run('/bin/sh', ['-c', 'ip netns del pwr1; ip netns del pwr2']));
  await env.must(PLUGIN, ['setup', '/run/netns/pwr1'], { input: execInput('a', false) });
  // b stops after its network's gateway is on the bridge, before its own record: a's teardown,
  // the network's last, would take bridge and pool from under it.
  const gatewayStep = (await stepsOf('setup', 'pwr2', 'd')).find((s) => s.startsWith('address 10.89.9.1/24'));
  await env.must(PLUGIN, ['teardown', '/run/netns/pwr2'], { input: execInput('d') });
  t.ok(gatewayStep, 'the gateway is a step of setup');
  const b = env.spawn(PLUGIN, ['setup', '/run/netns/pwr2'], {
    input: execInput('b', false),
    env: { PIPEWRIGHT_FAULT: `${gatewayStep}:stop` },
  });
  for (let i = 0; i < 200 && !stopped(b.pid!); i++) await new Promise((r) => setTimeout(r, 50));
  t.ok(stopped(b.pid!), "b's setup stopped at its step");
  const a = env.spawn(PLUGIN, ['teardown', '/run/netns/pwr1'], { input: execInput('a', false) });
  await new Promise((r) => setTimeout(r, 1500));
  process.kill(b.pid!, 'SIGCONT');
  const [ra, rb] = await Promise.all([a, b]);
  t.equal(rb.exitCode, 0, `b's setup: ${String(rb.stdout)}`);
  t.equal(ra.exitCode, 0, `a's teardown: ${String(ra.stdout)}`);
  const [att] = (await json(['ls'])) as { guest: { name: string }; status: string }[];
  t.same([att?.guest.name, att?.status], ['bbbbbbbbbbbb', 'ok'], "b's interface is whole");
  t.equal(((await json(['lease', 'ls'])) as unknown[]).length, 1, 'b holds its lease');
  t.equal(((await json(['network', 'ls'])) as unknown[]).length, 1, 'the network stays');
  await env.must(PLUGIN, ['teardown', '/run/netns/pwr2'], { input: execInput('b', false) });
  t.same(await leftovers(), []);
});
