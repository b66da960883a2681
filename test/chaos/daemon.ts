/**
 * The chaos suite's daemon part: `pipewright daemon` killed -9 at every named step its Docker
 * plugin calls (CreateEndpoint, Join, DeleteEndpoint, ...) and CNI verbs (ADD, CHECK, DEL) pass
 * through, started again at once, while containers start and go and CNI guests come and go.
 * After each kill: every container and guest still there has an address of its own; once they
 * are removed and gc ran, no link, lease or record is left of them.
 *
 * Kills: every step once, then again in turn until max(steps, CHAOS_N / 4) (50 at the default N).
 */
import t, { type Test } from 'tap';
import { Agent, request } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dockerNetworkCreate,
  cli,
  dockerUp,
  isRoot,
  netns,
  removeLinkAtEnd,
  RUN,
  sh,
  startDaemon,
  stateDir,
  TEST_IMAGE,
  uniq,
  until,
} from '../helpers/host.js';

const N = Number(process.env.CHAOS_N ?? 200);
const docker = isRoot && (await dockerUp());
const skip = !docker && 'needs root and a running Docker engine';
const DRIVER = `${RUN}cpw`;
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`;
const CNI_SOCKET = `/run/pipewright/${RUN}chaos-cni.sock`;

/** One CNI call on the daemon's socket: the plugin's exit code, or 'gone' when the daemon died under it. */
function cniCall(agent: Agent, command: string, conf: object, guest: string, id: string): Promise<string> {
  const headers = {
    'X-Cni-Command': command,
    'X-Cni-Containerid': id,
    'X-Cni-Netns': `/run/netns/${guest}`,
    'X-Cni-Ifname': 'eth0',
    'X-Cni-Path': '/usr/lib/cni',
  };
  return new Promise((resolve) => {
    const req = request({ socketPath: CNI_SOCKET, agent, path: '/', method: 'POST', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers['x-cni-exit'])));
      res.on('error', () => resolve('gone'));
    });
    req.on('error', () => resolve('gone'));
    req.end(JSON.stringify(conf));
  });
}

const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout || '[]');
const twice = (xs: string[]) => xs.filter((x, i) => xs.indexOf(x) !== i);
const ipOf = async (ctr: string) =>
  (
    await sh('docker', ['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', ctr])
  ).stdout.trim();
const cniAddress = async (guest: string) =>
  /inet (\S+)\//.exec((await sh('ip', ['-n', guest, '-4', 'addr', 'show', 'eth0'])).stdout)?.[1] ?? '';

/** A CNI call as a runtime makes it, again once a daemon answers when the one it asked died under it. */
async function cniRetry(agent: Agent, command: string, conf: object, guest: string, id: string): Promise<string> {
  const code = await cniCall(agent, command, conf, guest, id);
  if (code !== 'gone') return code;
  await until(async () => (await cniCall(agent, 'VERSION', {}, guest, id)) !== 'gone', 20_000);
  return cniCall(agent, command, conf, guest, id);
}

/**
 * What runs against the daemon in a round: a container started, a CNI guest added (a failed ADD
 * undone by DEL, as a runtime does) and checked.
 */
async function workload(net: string, agent: Agent, conf: object, guest: string) {
  const [name, id] = [uniq('k'), 'chaos'];
  const run = await sh('docker', ['run', '-d', '--name', name, '--network', net, TEST_IMAGE, 'sleep', '600']);
  let add = await cniRetry(agent, 'ADD', conf, guest, id);
  if (add !== '0') {
    await cniRetry(agent, 'DEL', conf, guest, id);
    add = await cniRetry(agent, 'ADD', conf, guest, id);
  }
  if (add === '0') await cniRetry(agent, 'CHECK', conf, guest, id);
  return { name, id, run, add };
}

/** The round's container and guest removed (by whichever daemon answers). */
async function removeWorkload(w: Awaited<ReturnType<typeof workload>>, agent: Agent, conf: object, guest: string) {
  await sh('docker', ['rm', '-f', w.name]);
  await cniRetry(agent, 'DEL', conf, guest, w.id);
}

/**
 * A step's name up to its first name of this round's own (a link pw<hex>, an endpoint's ID):
 * the fault seam matches by prefix, so the next round's same step is hit.
 */
const stablePrefix = (step: string) => /^(.*?)(?:\bpw[0-9a-f]{8}|\b[0-9a-f]{12}\b|$)/.exec(step)![1];

/** The ports of the run's bridges: a veth left on one is a leak (other links on the host are other tests'). */
const bridgePorts = (bridges: string[]) =>
  bridges
    .flatMap((b) => (existsSync(`/sys/class/net/${b}/brif`) ? readdirSync(`/sys/class/net/${b}/brif`) : []))
    .sort();

/** The named steps the daemon's calls pass through, learnt from a round without faults. */
async function stepsOf(
  t: Test,
  dir: string,
  net: string,
  agent: Agent,
  conf: object,
  guest: string,
): Promise<string[]> {
  const traceDir = mkdtempSync(join(tmpdir(), 'pipewright-trace-'));
  t.teardown(() => rmSync(traceDir, { recursive: true, force: true }));
  const trace = join(traceDir, 'steps');
  const d = await startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', CNI_SOCKET], {
    PIPEWRIGHT_FAULT_TRACE: trace,
  });
  await removeWorkload(await workload(net, agent, conf, guest), agent, conf, guest);
  d.proc.kill('SIGTERM');
  await d.proc;
  const traced = existsSync(trace) ? readFileSync(trace, 'utf8').split('\n').filter(Boolean) : [];
  return [...new Set(traced.map(stablePrefix))];
}

t.test(
  'the daemon killed -9 at each step of its Docker and CNI calls: 0 leaked links, leases, records; 0 duplicate addresses',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    t.teardown(() => [SOCKET, CNI_SOCKET].forEach((f) => rmSync(f, { force: true })));
    const agent = new Agent({ keepAlive: false });
    const [bridge, cniBridge, net] = [uniq('kb'), uniq('kc'), uniq('kn')];
    removeLinkAtEnd(t, bridge);
    removeLinkAtEnd(t, cniBridge);
    const guest = await netns(t);
    const daemon = await startDaemon(t, dir, ['--socket', SOCKET, '--cni-socket', CNI_SOCKET]);
    await cli(dir, ['pool', 'create', 'kp', '10.247.8.0/24']);
    const conf = {
      cniVersion: '1.1.0',
      name: 'kchaos',
      type: 'pipewright',
      bridge: cniBridge,
      pool: 'kp',
      stateDir: dir,
    };
    const made = await dockerNetworkCreate(net, {
      driver: DRIVER,
      ipam: DRIVER,
      subnet: '10.247.0.0/24',
      opts: ['-o', `bridge=${bridge}`],
    });
    t.equal(made.exitCode, 0, made.stderr);
    t.teardown(() => sh('docker', ['network', 'rm', net]));
    // A container that lives through every round: no later one may get its address.
    const anchor = uniq('k');
    t.teardown(() => sh('docker', ['rm', '-f', anchor]));
    t.equal(
      (await sh('docker', ['run', '-d', '--name', anchor, '--network', net, TEST_IMAGE, 'sleep', '3600'])).exitCode,
      0,
    );
    const anchorIp = await ipOf(anchor);
    daemon.proc.kill('SIGTERM');
    await daemon.proc;
    const steps = await stepsOf(t, dir, net, agent, conf, guest);
    t.ok(steps.length >= 5, `${steps.length} named steps: ${steps.join(', ')}`);
    const ports = bridgePorts([bridge, cniBridge]);
    const [baseLeases, baseRecords] = [(await json(dir, ['lease', 'ls'])).length, (await json(dir, ['ls'])).length];
    const rounds = Math.max(steps.length, Math.round(N / 4));
    let kills = 0;
    const problems: string[] = [];
    const args = ['--socket', SOCKET, '--cni-socket', CNI_SOCKET];
    for (let round = 0; round < rounds; round++) {
      const step = steps[round % steps.length];
      const faulty = await startDaemon(t, dir, args, { PIPEWRIGHT_FAULT: `${step}:crash` });
      // Killed: started again at once, as systemd would (Docker's calls wait for it; a CNI call sees it gone).
      const next = faulty.proc.then((r) => (r.signal === 'SIGKILL' ? startDaemon(t, dir, args) : null));
      const w = await workload(net, agent, conf, guest);
      const made = (await json(dir, ['ls'])).map((a: { hostLink: string }) => a.hostLink);
      const live = [
        anchorIp,
        w.run.exitCode === 0 ? await ipOf(w.name) : '',
        w.add === '0' ? await cniAddress(guest) : '',
      ].filter(Boolean);
      if (twice(live).length) problems.push(`${step}: an address twice: ${live.join(' ')}`);
      await removeWorkload(w, agent, conf, guest);
      // Its step was not reached.
      if (faulty.proc.exitCode === null && faulty.proc.signalCode === null) faulty.proc.kill('SIGTERM');
      const restarted = await next;
      if (restarted) kills++;
      await cli(dir, ['gc']);
      const [records, leases, nowPorts] = [
        await json(dir, ['ls']),
        await json(dir, ['lease', 'ls']),
        bridgePorts([bridge, cniBridge]),
      ];
      const left = made.filter(
        (l: string) =>
          l && existsSync(`/sys/class/net/${l}`) && !records.some((r: { hostLink: string }) => r.hostLink === l),
      );
      if (records.length !== baseRecords) problems.push(`${step}: ${records.length} records, ${baseRecords} before`);
      if (leases.length !== baseLeases) problems.push(`${step}: ${leases.length} leases, ${baseLeases} before`);
      if (left.length || nowPorts.join(' ') !== ports.join(' '))
        problems.push(`${step}: links left: ${left.join(' ')}; bridge ports ${nowPorts.join(' ')}`);
      restarted?.proc.kill('SIGTERM');
      await restarted?.proc;
    }
    // The network goes while a daemon answers: its bridge and records with it.
    await startDaemon(t, dir, args);
    await sh('docker', ['rm', '-f', anchor]);
    t.equal((await sh('docker', ['network', 'rm', net])).exitCode, 0);
    t.equal((await cli(dir, ['network', 'rm', 'kchaos'])).exitCode, 0, "the CNI guests' network goes too");
    t.same(
      [await json(dir, ['network', 'ls']), await json(dir, ['ls']), await json(dir, ['lease', 'ls'])],
      [[], [], []],
      'no network, record or lease left',
    );
    t.notOk(existsSync(`/sys/class/net/${bridge}`), 'no bridge left');
    t.comment(`daemon chaos: ${rounds} rounds over ${steps.length} steps, ${kills} kills`);
    t.same(problems, [], `${kills} kills: nothing leaked, no address twice`);
    t.ok(kills >= Math.min(rounds, 5), 'the daemon did die at the steps');
  },
);
