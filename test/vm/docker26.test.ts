/**
 * Docker 26 and an nftables-only host, in the Debian 13 environment of test/vm/trixie.ts (the
 * second root, `build-trixie-root.sh <dir> docker`: docker.io 26.1.5, containerd, runc), entered
 * in a private mount namespace and a network namespace of its own: dockerd and containerd run
 * there, never the host's Docker, and their firewall writes stay in that namespace.
 *
 * 1. `pipewright daemon` as Docker 26's network, IPAM and volume driver: two containers on a
 *    pipewright network ping each other, `-p` answers, `docker restart` keeps the address, a sized
 *    volume's quota holds (ENOSPC), and nothing is left after rm.
 * 2. nftables only (every iptables binary removed from the environment's overlay): `attach -p`
 *    with the nftables backend publishes a port, the guest pings, and detach leaves no rule.
 */
import t, { type Test } from 'tap';
import { CHECKOUT, rootForTests, TRIXIE_DOCKER_ROOT, TrixieEnv } from './trixie.js';
import { firewallNames } from '../../src/net/firewall/names.js';

await rootForTests(t, TRIXIE_DOCKER_ROOT, 'docker');

const PW = `${CHECKOUT}/dist/bin/pipewright`;
const IMAGE = 'pipewright-test/busybox:latest';
const STATE = { PIPEWRIGHT_STATE_DIR: '/tmp/pw-state' };
/** That store's nftables table (a store outside /var/lib/pipewright owns tables named after it). */
const TABLE4 = firewallNames(STATE.PIPEWRIGHT_STATE_DIR).nft4.split(' ');
const secs = (since: number) => ((Date.now() - since) / 1000).toFixed(1);

/**
 * A started environment, stopped (its processes killed, its mounts gone) at the test's end; first
 * `before`, for what lives in mount namespaces of its own (containers), which the stop cannot see.
 */
async function environment(t: Test, before = async () => {}): Promise<TrixieEnv> {
  const env = await TrixieEnv.start(TRIXIE_DOCKER_ROOT);
  t.teardown(async () => {
    await before();
    await env.stop();
  });
  return env;
}

/** Repeats a shell script in the environment until it exits 0 (at most `tries` times, 250 ms apart). */
async function until(env: TrixieEnv, script: string, tries = 40) {
  let r = await env.run('/bin/sh', ['-c', script], { env: STATE });
  for (let i = 1; i < tries && r.code !== 0; i++) {
    await new Promise((res) => setTimeout(res, 250));
    r = await env.run('/bin/sh', ['-c', script], { env: STATE });
  }
  return r;
}

/** pipewright's records, pools, leases, volumes and nftables elements in the environment. */
async function leftovers(env: TrixieEnv): Promise<string[]> {
  const out: string[] = [];
  for (const what of [['ls'], ['network', 'ls'], ['pool', 'ls'], ['lease', 'ls'], ['volume', 'ls']]) {
    const items = JSON.parse(await env.must(PW, [...what, '--json'], { env: STATE })) as unknown[];
    for (const item of items) out.push(`${what.join(' ')}: ${JSON.stringify(item)}`);
  }
  const rules = (await env.run('nft', ['list', 'table', ...TABLE4])).stdout;
  for (const line of rules.split('\n').filter((l) => /elements =/.test(l))) out.push(`nft: ${line.trim()}`);
  return out;
}

t.test('Docker 26: pipewright as network, IPAM and volume driver', async (t) => {
  const started = Date.now();
  // Docker's cgroups under a parent of this run's own (the environment shares the host's cgroup2
  // tree): what is left in it at the end (a container whose shim was killed) is killed with it.
  const cgroup = `pw-docker26-${process.pid}`;
  const env = await environment(t, async () => {
    await env.run('/bin/sh', [
      '-c',
      `docker rm -f $(docker ps -aq) 2>/dev/null; cd /sys/fs/cgroup/${cgroup} 2>/dev/null || exit 0
echo 1 >cgroup.kill; cd /; for _ in 1 2 3 4 5 6 7 8 9 10; do
  find /sys/fs/cgroup/${cgroup} -depth -type d -exec rmdir {} + 2>/dev/null && break; sleep 0.2; done`,
    ]);
  });

  // Docker's storage on a tmpfs (overlayfs cannot be the upper layer of its own mounts); the
  // daemon's socket where Docker finds plugins, under the environment's own /run.
  await env.must('/bin/sh', ['-c', 'mkdir -p /var/lib/docker /tmp/pw-state && mount -t tmpfs tmpfs /var/lib/docker']);
  env.spawn(PW, ['daemon', '--socket', '/run/docker/plugins/pw.sock', '--cni-socket', ''], { env: STATE });
  env.spawn('dockerd', [
    '--exec-opt',
    'native.cgroupdriver=cgroupfs',
    '--cgroup-parent',
    `/${cgroup}`,
    '--storage-driver',
    'vfs',
  ]);
  const up = await until(
    env,
    'docker version --format {{.Server.Version}} && test -S /run/docker/plugins/pw.sock',
    120,
  );
  t.equal(up.code, 0, `dockerd and the daemon answer: ${up.stderr}`);
  t.match(up.stdout, /^26\./, `Docker ${up.stdout.trim()}`);
  t.comment(`dockerd (with its containerd) and pipewright daemon up in ${secs(started)} s`);
  await env.must('bash', [`${CHECKOUT}/scripts/build-test-image.sh`, 'docker']);

  const docker = (...args: string[]) => env.run('docker', args);
  const made = await docker(
    ...[
      'network',
      'create',
      '-d',
      'pw',
      '--ipam-driver',
      'pw',
      '--subnet',
      '10.91.0.0/24',
      '-o',
      'bridge=pwd26',
      'pwnet',
    ],
  );
  t.equal(made.code, 0, made.stderr);
  const ipOf = async (c: string) =>
    (await env.must('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', c])).trim();
  const web = 'echo hello-docker26 >/tmp/index.html; exec httpd -f -p 80 -h /tmp';
  const a = await docker('run', '-d', '--name', 'ca', '--network', 'pwnet', '-p', '8080:80', IMAGE, 'sh', '-c', web);
  t.equal(a.code, 0, a.stderr);
  const b = await docker('run', '-d', '--name', 'cb', '--network', 'pwnet', IMAGE, 'sleep', '600');
  t.equal(b.code, 0, b.stderr);
  const [ipA, ipB] = [await ipOf('ca'), await ipOf('cb')];
  t.equal(
    (await env.run('test', ['-d', `/sys/fs/cgroup/${cgroup}`])).code,
    0,
    "the containers' cgroups are this run's",
  );
  t.same([ipA, ipB], ['10.91.0.2', '10.91.0.3'], 'pool addresses, the gateway held back');
  t.equal((await docker('exec', 'ca', 'ping', '-c', '1', '-W', '2', ipB)).code, 0, 'a pings b');
  t.equal((await docker('exec', 'cb', 'ping', '-c', '1', '-W', '2', ipA)).code, 0, 'b pings a');
  const page = await until(env, 'busybox wget -q -T 2 -O - http://10.91.0.1:8080/index.html');
  t.match(page.stdout, /hello-docker26/, "-p 8080:80 answers on the host's address (the environment's netns)");
  t.match(await env.must('nft', ['list', 'table', ...TABLE4]), /tcp \. 8080 : 10\.91\.0\.2 \. 80/);

  const macOf = async (c: string) =>
    (
      await env.must('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}', c])
    ).trim();
  const mac = await macOf('ca');
  const restarted = Date.now();
  const restart = await docker('restart', '-t', '0', 'ca');
  t.equal(restart.code, 0, restart.stderr);
  // With pipewright's IPAM, Docker 26 gives the endpoint a new random MAC at each start (its own
  // IPAM gets one derived from the address): the join announces it, so b's entry is renewed at once.
  const newMac = await macOf('ca');
  t.comment(`docker restart -t 0: ${secs(restarted)} s; MAC ${mac} -> ${newMac}`);
  t.not(newMac, mac, 'a new MAC at the restart');
  t.equal(await ipOf('ca'), ipA, 'docker restart keeps the address');
  const reach = await docker('exec', 'cb', 'ping', '-c', '1', '-W', '1', ipA);
  t.equal(reach.code, 0, "b's first ping reaches it again (its new MAC was announced)");
  t.comment(`docker restart to b's ping answered: ${secs(restarted)} s`);

  const again = await until(env, 'busybox wget -q -T 2 -O - http://10.91.0.1:8080/index.html');
  t.match(again.stdout, /hello-docker26/, '-p answers after the restart');
  t.comment(`docker restart to an answering -p: ${secs(restarted)} s`);

  const vol = await docker('volume', 'create', '-d', 'pw', '-o', 'size=16M', 'pwvol');
  t.equal(vol.code, 0, vol.stderr);
  const fill = await docker(
    ...['run', '--rm', '-v', 'pwvol:/data', IMAGE, 'sh', '-c'],
    'dd if=/dev/zero of=/data/big bs=1M count=64; echo "dd $?"; du -k /data/big',
  );
  t.match(fill.stderr, /No space left on device/, 'writing 64 MiB into a 16M volume fails with ENOSPC');
  const [, rc, kib] = /dd (\d+)\n(\d+)/.exec(fill.stdout) ?? [];
  t.not(rc, '0', `dd exits non-zero (${rc})`);
  t.ok(Number(kib) > 8000 && Number(kib) <= 16384, `the write stopped at the quota (${kib} KiB)`);

  t.equal((await docker('rm', '-f', 'ca', 'cb')).code, 0);
  t.equal((await docker('network', 'rm', 'pwnet')).code, 0);
  t.equal((await docker('volume', 'rm', 'pwvol')).code, 0);
  const left = await until(env, `test "$(${PW} ls --json)" = "[]"`);
  t.equal(left.code, 0, 'the endpoints went with the containers');
  t.same(await leftovers(env), [], 'no record, network, pool, lease, volume or published port left');
  t.notMatch(await env.must('ip', ['-br', 'link']), /pwd26/, 'the bridge went with the network');
  t.notMatch(await env.must('cat', ['/proc/self/mountinfo']), /pw-state\/volumes/, "the volume's image is unmounted");
  t.comment(`Docker 26 test: ${secs(started)} s`);
});

t.test('nftables only: attach -p with no iptables binary, detach leaves no rule', async (t) => {
  const started = Date.now();
  const env = await environment(t);
  // Remove every iptables binary (whiteouts in the environment's overlay; the cached root keeps them).
  await env.must('/bin/sh', ['-c', 'rm -f /usr/sbin/*tables* /usr/bin/*tables*']);
  const gone = await env.run('/bin/sh', ['-c', 'ls /usr/sbin /usr/bin /sbin /bin | grep -c tables || true']);
  t.equal(gone.stdout.trim(), '0', 'no iptables binary at all');
  const ruleset = () => env.must('nft', ['list', 'ruleset']);
  const before = await ruleset();
  const pw = (...args: string[]) => env.run(PW, ['--firewall', 'nftables', ...args], { env: STATE });
  await env.must('/bin/sh', [
    '-c',
    'ip netns add g && mkdir -p /tmp/www && echo hello-nft >/tmp/www/index.html && mkdir -p /tmp/pw-state',
  ]);
  t.teardown(() => env.run('ip', ['netns', 'del', 'g']));
  for (const args of [
    ['pool', 'create', 'p', '10.92.0.0/24'],
    ['network', 'create', 'n', '--bridge', 'pwnft0', '--pool', 'p', '--masquerade'],
  ])
    t.equal((await pw(...args)).code, 0, args.join(' '));
  const attach = await pw('attach', 'pwnft0', 'netns:g', 'pool:p', '-p', '8081:80');
  t.equal(attach.code, 0, `attach -p with the nftables backend: ${attach.stderr}`);
  // nsenter, not `ip netns exec`: the server stays in the environment's mount namespace (the stop kills it).
  env.spawn('nsenter', ['--net=/run/netns/g', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/tmp/www']);
  const page = await until(env, 'busybox wget -q -T 2 -O - http://10.92.0.1:8081/index.html');
  t.match(page.stdout, /hello-nft/, 'the published port answers');
  t.equal(
    (await env.run('nsenter', ['--net=/run/netns/g', 'busybox', 'ping', '-c', '1', '-W', '2', '10.92.0.1'])).code,
    0,
    'the guest pings its gateway',
  );
  t.match(await env.must('nft', ['list', 'table', ...TABLE4]), /tcp \. 8081 : 10\.92\.0\.2 \. 80/);
  const detach = await pw('detach', 'netns:g');
  t.equal(detach.code, 0, detach.stderr);
  t.equal((await pw('network', 'rm', 'n')).code, 0);
  t.equal((await pw('pool', 'rm', 'p')).code, 0);
  t.equal(await ruleset(), before, 'detach: the rule set is the one before attach');
  t.same(await leftovers(env), []);
  t.comment(`nftables-only test: ${secs(started)} s`);
});
