/**
 * Containers kept plumbed across their lifecycle, with a real dockerd: `run` all or nothing,
 * `watch` restoring a restarted container within 2 s (interface, address, route, MAC, published
 * port, mount), cleaning up a removed one, fixing at startup what happened while it was down, and
 * riding out an engine restart.
 */
import t, { type Test } from 'tap';
import { execa, type ResultPromise } from 'execa';
import { cli, CLI, dockerUp, hostLinks, isRoot, must, sh, stateDir, TEST_IMAGE, uniq, until } from '../helpers/host.js';

const docker = isRoot && (await dockerUp());
const SKIP = !docker && 'needs root and a running Docker engine (scripts/test.sh starts one)';
type T = Test;

/** A pipewright network for the test, removed at the end. */
async function network(t: T, dir: string, subnet: string): Promise<string> {
  const br = uniq('w');
  // Runs after the test's containers are removed (teardowns run newest first): gc releases what they held.
  t.teardown(async () => {
    await cli(dir, ['gc']);
    await cli(dir, ['network', 'rm', 'lan']);
    await sh('ip', ['link', 'del', br]);
  });
  for (const args of [
    ['pool', 'create', 'lan', subnet],
    ['network', 'create', 'lan', '--bridge', br, '--pool', 'lan', '--masquerade'],
  ]) {
    const r = await cli(dir, args);
    if (r.exitCode !== 0) throw new Error(r.stderr);
  }
  return br;
}

function startWatch(t: T, dir: string): { proc: ResultPromise; lines: () => string[] } {
  const proc = execa(CLI, ['watch', '--log-format', 'json'], { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir } });
  let out = '';
  proc.stdout!.on('data', (d) => {
    out += d;
  });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  return { proc, lines: () => out.split('\n').filter(Boolean) };
}

async function runWeb(t: T, dir: string, br: string, extra: string[] = []): Promise<{ id: string; name: string }> {
  const name = uniq('r');
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  const r = await cli(dir, [
    'run',
    '--network',
    br,
    '-p',
    '18097:8080',
    '-v',
    'wdata:/data',
    ...extra,
    '--json',
    '--',
    '--name',
    name,
    TEST_IMAGE,
    'sh',
    '-c',
    'echo served > /tmp/index.html; exec httpd -f -p 8080 -h /tmp',
  ]);
  if (r.exitCode !== 0) throw new Error(r.stderr);
  return { id: JSON.parse(r.stdout).id, name };
}

async function serves(): Promise<boolean> {
  try {
    const res = await fetch('http://127.0.0.1:18097/index.html', { signal: AbortSignal.timeout(1000) });
    return (await res.text()).trim() === 'served';
  } catch {
    return false;
  }
}
const eth0 = async (name: string) =>
  (await execa('docker', ['exec', name, 'ip', '-o', '-4', 'addr', 'show', 'eth0'], { reject: false })).stdout;
const mac = async (name: string) =>
  (await execa('docker', ['exec', name, 'cat', '/sys/class/net/eth0/address'], { reject: false })).stdout;

t.test('run, restart under watch, removal under watch', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const br = await network(t, dir, '10.247.9.0/24');
  t.teardown(() => cli(dir, ['volume', 'rm', '-f', 'wdata']));
  const { id, name } = await runWeb(t, dir, br);
  t.match(id, /^[0-9a-f]{64}$/);
  t.ok((await until(serves, 3000)) >= 0, 'published port answers after run');
  t.match(
    await must('docker', ['inspect', '-f', '{{range .Mounts}}{{.Destination}}{{end}}', name]),
    '/data',
    'the volume went to Docker as a mount',
  );
  const [addr, hw] = [await eth0(name), await mac(name)];
  t.match(addr, /10\.247\.9\.2\/24/);

  const w = startWatch(t, dir);
  t.ok((await until(() => w.lines().some((l) => l.includes('connected')), 5000)) >= 0, 'watch connected');
  await must('docker', ['restart', '-t', '0', name]);
  const ms = await until(serves, 5000);
  t.ok(ms >= 0 && ms <= 2000, `restored and answering ${ms} ms after docker restart (<= 2000)`);
  t.equal(await eth0(name), addr, 'same interface and address');
  t.equal(await mac(name), hw, 'same MAC');
  t.match(await must('docker', ['exec', name, 'ip', 'route']), /default via 10\.247\.9\.1/, 'same default route');

  const hostLink = JSON.parse((await cli(dir, ['ls', '--json'])).stdout)[0].hostLink;
  await must('docker', ['rm', '-f', name]);
  t.ok(
    (await until(async () => JSON.parse((await cli(dir, ['ls', '--json'])).stdout).length === 0, 5000)) >= 0,
    'records gone after docker rm -f',
  );
  t.same(JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout), [], 'lease released');
  t.notOk((await hostLinks()).includes(hostLink), 'host veth gone');
  t.same(JSON.parse((await cli(dir, ['ports', '--json'])).stdout), [], 'published port gone');
  t.notOk(await serves(), 'and no longer answers');
  t.ok(
    w.lines().some((l) => JSON.parse(l).report?.action === 'cleaned'),
    'watch logged the clean-up as JSON',
  );
});

t.test('a restart while watch was down is fixed at its startup', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const br = await network(t, dir, '10.247.10.0/24');
  t.teardown(() => cli(dir, ['volume', 'rm', '-f', 'wdata']));
  const { name } = await runWeb(t, dir, br);
  t.ok((await until(serves, 3000)) >= 0, 'answers after run');
  await must('docker', ['restart', '-t', '0', name]);
  t.notOk(await serves(), 'without watch, the restarted container has lost its plumbing');
  t.equal(JSON.parse((await cli(dir, ['ls', '--json'])).stdout)[0].status, 'stale', 'ls shows it as stale');
  startWatch(t, dir);
  t.ok((await until(serves, 5000)) >= 0, 'watch restored it at startup');
  t.equal(JSON.parse((await cli(dir, ['ls', '--json'])).stdout)[0].status, 'ok');
});

t.test('a failing run leaves no container, lease or interface', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const br = await network(t, dir, '10.247.11.0/24');
  const links = await hostLinks();
  await cli(dir, ['lease', 'reserve', 'lan', '10.247.11.7', '--owner', 'someone']);
  const name = uniq('f');
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  // The second network's address is taken: the failure comes after the container runs and eth0 is attached.
  const r = await cli(dir, [
    'run',
    '--network',
    br,
    '--network',
    `${br}:10.247.11.7/24`,
    '--',
    '--name',
    name,
    TEST_IMAGE,
    'sleep',
    '60',
  ]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /taken by someone/);
  t.equal((await sh('docker', ['inspect', name])).exitCode, 1, 'the container was removed');
  t.same(
    JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout).map((l: { owner: string }) => l.owner),
    ['someone'],
    'only the reservation is left',
  );
  t.same(await hostLinks(), links, 'no interface left');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), []);
  await cli(dir, ['lease', 'release', '--owner', 'someone']);
});

t.test(
  'watch rides out a Docker engine restart',
  {
    skip:
      (!docker || !process.env.PIPEWRIGHT_TEST_RESTART_DOCKERD) &&
      'restarts dockerd: only when scripts/test.sh started it (PIPEWRIGHT_TEST_RESTART_DOCKERD=1)',
  },
  async (t) => {
    const dir = stateDir(t);
    const br = await network(t, dir, '10.247.12.0/24');
    t.teardown(() => cli(dir, ['volume', 'rm', '-f', 'wdata']));
    const { name } = await runWeb(t, dir, br, []);
    await must('docker', ['update', '--restart', 'always', name]);
    const w = startWatch(t, dir);
    await until(() => w.lines().some((l) => l.includes('connected')), 5000);
    await must('pkill', ['-x', 'dockerd']);
    await until(async () => (await sh('pgrep', ['-x', 'dockerd'])).exitCode !== 0, 20_000);
    const log = process.env.PIPEWRIGHT_TEST_DOCKERD_LOG ?? '/dev/null';
    await execa('sh', ['-c', `dockerd >> "$0" 2>&1 &`, log]);
    t.ok((await until(dockerUp, 30_000)) >= 0, 'engine back');
    t.ok(
      (await until(() => w.lines().filter((l) => l.includes('connected')).length >= 2, 15_000)) >= 0,
      'watch reconnected',
    );
    t.ok((await until(serves, 15_000)) >= 0, 'the container, restarted by its policy, was plumbed again');
    // The sync is queued after the reconcile that plumbed the container: it may land a moment later.
    t.ok(
      (await until(() => w.lines().filter((l) => l.includes('firewall in sync')).length >= 2, 10_000)) >= 0,
      'the firewall was synced on each connection',
    );
  },
);

t.test(
  "run: a -d in the container's own command is the container's, and the ID comes from Docker's cidfile",
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const br = await network(t, dir, '10.247.14.0/24');
    const name = uniq('d');
    t.teardown(() => sh('docker', ['rm', '-f', name]));
    const t0 = Date.now();
    // "-d" here is the script's $0, not Docker's flag: pipewright must still start the container detached.
    const r = await cli(dir, [
      'run',
      '--network',
      br,
      '--json',
      '--',
      '--name',
      name,
      TEST_IMAGE,
      'sh',
      '-c',
      'sleep 60',
      '-d',
    ]);
    t.equal(r.exitCode, 0, r.stderr);
    t.ok(Date.now() - t0 < 20_000, 'returned while the container runs');
    const { id } = JSON.parse(r.stdout);
    t.equal(id, (await must('docker', ['inspect', '-f', '{{.Id}}', name])).trim(), "the ID is Docker's own");
    t.equal((await must('docker', ['inspect', '-f', '{{.State.Running}}', name])).trim(), 'true');
    t.equal((await cli(dir, ['detach', name])).exitCode, 0);
  },
);

t.test(
  "run: a comma in a -v path cannot add keys to Docker's --mount (src=/ past the host-path checks)",
  { skip: SKIP },
  async (t) => {
    const dir = stateDir(t);
    const name = uniq('m');
    t.teardown(() => sh('docker', ['rm', '-f', name]));
    for (const v of ['data:/data,src=/', 'data:/data,readonly=false', '/tmp:/x,src=/']) {
      const r = await cli(dir, ['run', '-v', v, '--', '--name', name, TEST_IMAGE, 'sleep', '60']);
      t.equal(r.exitCode, 2, `-v ${v} is a usage error`);
      t.match(r.stderr, /may not contain ','/);
    }
    t.equal((await sh('docker', ['inspect', name])).exitCode, 1, 'no container was created');
    t.same(JSON.parse((await cli(dir, ['volume', 'ls', '--json'])).stdout), [], 'nor a volume');
  },
);
