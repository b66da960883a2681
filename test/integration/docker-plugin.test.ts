/**
 * `pipewright daemon` as Docker's IPAM and volume driver, against the real dockerd: networks made
 * with `--ipam-driver` take their subnet, gateway and container addresses from pipewright's pools
 * and leases; volumes made with `-d` are pipewright volumes (a size is a hard quota). Each test run
 * serves its own socket, so the driver's name is unique (Docker names a plugin after its socket).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { CLI, cli, dockerUp, isRoot, must, RUN, sh, stateDir, TEST_IMAGE, uniq } from '../helpers/host.js';

const docker = isRoot && (await dockerUp());
const skip = !docker && 'needs root and a running Docker engine (scripts/test.sh starts one)';
const DRIVER = `${RUN}pw`;
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;

/** The daemon on this run's socket, stopped (SIGTERM) at teardown; resolves once it listens. */
async function daemon(t: Test, dir: string) {
  const proc = execa(CLI, ['daemon', '--socket', SOCKET, '--log-format', 'json'], { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir } });
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await proc;
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('"listening"') && resolve());
    void proc.then((r) => reject(new Error(`the daemon ended: ${r.stderr}`)));
  });
  return { proc }; // wrapped: a returned process (a thenable) would be awaited to its end
}

/** A plugin call as dockerd makes it. */
function post(method: string, body: object): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: SOCKET, path: `/${method}`, method: 'POST' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(JSON.parse(text)));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);
const ipOf = async (ctr: string) => (await must('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', ctr])).trim();

/** A Docker network on this run's IPAM driver (its bridge named for the run), removed at teardown. */
async function network(t: Test, args: string[]): Promise<string> {
  const net = uniq('n');
  const made = await sh('docker', ['network', 'create', '--ipam-driver', DRIVER, '-o', `com.docker.network.bridge.name=${uniq('b')}`, ...args, net]);
  t.equal(made.exitCode, 0, made.stderr);
  t.teardown(() => sh('docker', ['network', 'rm', net]));
  return net;
}

async function container(t: Test, args: string[]) {
  const name = uniq('c');
  const r = await sh('docker', ['run', '-d', '--name', name, ...args, TEST_IMAGE, 'sleep', '600']);
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  return { name, r };
}

t.test('IPAM driver: a network from --subnet, --ip honoured, addresses leased and released', { skip }, async (t) => {
  const dir = stateDir(t);
  await daemon(t, dir);
  const net = await network(t, ['--subnet', '10.252.50.0/24', '--gateway', '10.252.50.1']);
  const inspect = JSON.parse(await must('docker', ['network', 'inspect', net]))[0].IPAM;
  t.same(inspect.Config, [{ Subnet: '10.252.50.0/24', Gateway: '10.252.50.1' }], 'docker network inspect shows the subnet and gateway');
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
  t.same(leased, ['10.252.50.1', '10.252.50.7', await ipOf(b.name)].sort(), 'the gateway and both containers hold leases');

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

  const fill = await sh('docker', ['run', '--rm', '-v', `${vol}:/data`, TEST_IMAGE, 'dd', 'if=/dev/zero', 'of=/data/big', 'bs=1M', 'count=64']);
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

t.test('the daemon: one line per error, its socket removed when it stops, refuses a second on the same socket', { skip }, async (t) => {
  const dir = stateDir(t);
  const { proc: first } = await daemon(t, dir);
  const second = await cli(dir, ['daemon', '--socket', SOCKET]);
  t.equal(second.exitCode, 1);
  t.match(second.stderr, /another daemon answers on .*; stop it first/);
  t.same(await post('Plugin.Activate', {}), { Implements: ['IpamDriver', 'VolumeDriver'] });
  const err = await post('IpamDriver.RequestAddress', { PoolID: 'nosuch' });
  t.match(err.Err, /^no pool named nosuch/, 'an error is {"Err": "<one line>"}');
  first.kill('SIGTERM');
  await first;
  t.notOk(existsSync(SOCKET), 'the socket went with the daemon');
});
