/**
 * pipewright next to other software's firewall rules: a Docker container publishing a port and a
 * CNI bridge network with ipMasq keep working while pipewright adds and removes its own, and
 * their rules are exactly as they were afterwards. Plus network isolation.
 */
import t from 'tap';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  askPeer,
  cli,
  dockerUp,
  firewallSnapshot,
  inNs,
  isRoot,
  must,
  netns,
  peerServer,
  ping,
  ROOT_REASON,
  sh,
  stateDir,
  TEST_IMAGE,
  testHost,
  uniq,
} from '../helpers/host.js';

const docker = isRoot && (await dockerUp());

async function cni(command: 'ADD' | 'DEL', ns: string, bridge: string, dataDir: string) {
  const conf = JSON.stringify({
    cniVersion: '0.4.0',
    name: `${bridge}net`,
    type: 'bridge',
    bridge,
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'host-local', subnet: '10.238.9.0/24', dataDir },
  });
  return execa('/usr/lib/cni/bridge', [], {
    input: conf,
    reject: false,
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: ns,
      CNI_NETNS: `/run/netns/${ns}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
    },
  });
}

const dockerServes = async (port: number) =>
  (
    await execa('busybox', ['wget', '-q', '-O', '-', `http://127.0.0.1:${port}/passwd`], { reject: false })
  ).stdout.startsWith('root:');

for (const firewall of ['iptables', 'nftables']) {
  t.test(
    `Docker and CNI rules keep working and stay untouched (${firewall})`,
    { skip: !docker && 'needs root and a running Docker engine' },
    async (t) => {
      const dir = stateDir(t);
      const pw = (...args: string[]) => cli(dir, ['--firewall', firewall, ...args]);
      const ctr = uniq('c');
      await must('docker', [
        'run',
        '-d',
        '--name',
        ctr,
        '-p',
        '18090:80',
        TEST_IMAGE,
        'httpd',
        '-f',
        '-p',
        '80',
        '-h',
        '/etc',
      ]);
      t.teardown(() => sh('docker', ['rm', '-f', ctr]));
      const cniNs = await netns(t);
      const cniBr = uniq('k');
      const cniData = mkdtempSync(join(tmpdir(), 'pipewright-cni-'));
      t.teardown(async () => {
        await cni('DEL', cniNs, cniBr, cniData);
        await sh('ip', ['link', 'del', cniBr]);
        rmSync(cniData, { recursive: true, force: true });
      });
      t.equal((await cni('ADD', cniNs, cniBr, cniData)).exitCode, 0, 'CNI bridge ADD');
      for (let i = 0; i < 20 && !(await dockerServes(18090)); i++) await new Promise((r) => setTimeout(r, 250));
      t.ok(await dockerServes(18090), `Docker's published port answers (${firewall})`);
      const before = await firewallSnapshot();

      const br = uniq('a');
      t.teardown(() => sh('ip', ['link', 'del', br]));
      const guest = await netns(t);
      await pw('pool', 'create', 'p', '10.247.5.0/24');
      t.equal((await pw('network', 'create', 'n', '--bridge', br, '--pool', 'p', '--masquerade')).exitCode, 0);
      t.equal((await pw('attach', br, guest, 'pool:p', '-p', '18091:8080')).exitCode, 0);
      await peerServer(t, guest, 'tcp', 8080);
      t.equal(await askPeer(null, 'tcp', '127.0.0.1', 18091), '10.247.5.1', "pipewright's port answers");
      t.ok(await dockerServes(18090), "Docker's port still answers");
      t.ok(await ping(cniNs, '10.238.9.1'), 'the CNI guest still reaches its gateway');

      t.equal((await pw('detach', guest)).exitCode, 0);
      t.equal((await pw('network', 'rm', 'n')).exitCode, 0);
      t.equal(await firewallSnapshot(), before, `Docker's and CNI's rules exactly as before (${firewall})`);
      t.ok(await dockerServes(18090), "Docker's port answers after pipewright left");
    },
  );
}

t.test('--isolated drops traffic to other pipewright bridges', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [brA, brB, brC] = [uniq('a'), uniq('b'), uniq('c')];
  t.teardown(async () => {
    for (const b of [brA, brB, brC]) await sh('ip', ['link', 'del', b]);
  });
  const [ga, gb, gc] = [await netns(t), await netns(t), await netns(t)];
  const steps = [
    ['pool', 'create', 'pa', '10.247.6.0/24'],
    ['pool', 'create', 'pb', '10.247.7.0/24'],
    ['pool', 'create', 'pc', '10.247.8.0/24'],
    ['network', 'create', 'na', '--bridge', brA, '--pool', 'pa', '--isolated', '--masquerade'],
    ['network', 'create', 'nb', '--bridge', brB, '--pool', 'pb', '--masquerade'],
    ['network', 'create', 'nc', '--bridge', brC, '--pool', 'pc', '--masquerade'],
    ['attach', brA, ga, 'pool:pa'],
    ['attach', brB, gb, 'pool:pb'],
    ['attach', brC, gc, 'pool:pc'],
  ];
  for (const s of steps) t.equal((await cli(dir, s)).exitCode, 0, s.join(' '));
  t.ok(await ping(gc, '10.247.7.2'), 'two open networks reach each other through the host');
  t.notOk(await ping(ga, '10.247.7.2'), 'the isolated network does not reach another bridge');
  t.notOk(await ping(gb, '10.247.6.2'), 'nor is it reached from one');
  t.ok((await inNs(ga, ['ping', '-c', '1', '-W', '2', '10.247.6.1'])).exitCode === 0, 'its own gateway answers');
  for (const g of [ga, gb, gc]) await cli(dir, ['detach', g]);
  for (const n of ['na', 'nb', 'nc']) t.equal((await cli(dir, ['network', 'rm', n])).exitCode, 0);
});

t.test(
  'no ip6 filter table is created where none existed (iptables, a fresh stand-in host)',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    const ip6Filter = async () =>
      (await sh('ip', ['netns', 'exec', host.ns, 'nft', 'list', 'table', 'ip6', 'filter'])).exitCode === 0;
    t.notOk(await ip6Filter(), 'the host starts without one');
    const dir = stateDir(t);
    const guest = await netns(t);
    t.equal(
      (await host.cli(dir, ['--firewall', 'iptables', 'attach', 'br6', guest, '10.247.9.2/24', 'fd47::2/64'])).exitCode,
      0,
    );
    t.notOk(await ip6Filter(), 'attach wrote no IPv6 accept: nothing drops IPv6 without that table');
    t.equal((await host.cli(dir, ['--firewall', 'iptables', 'detach', guest])).exitCode, 0);
    t.notOk(await ip6Filter(), 'and detach leaves none');
  },
);

t.test(
  'two stores on one host: hooks never pile up, removal and sync keep working (iptables)',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const before = await firewallSnapshot();
    const [dirA, dirB] = [stateDir(t), stateDir(t)];
    const [brA, brB] = [uniq('y'), uniq('z')];
    t.teardown(async () => {
      for (const b of [brA, brB]) await sh('ip', ['link', 'del', b]);
    });
    const pw = (dir: string, ...args: string[]) => cli(dir, ['--firewall', 'iptables', ...args]);
    const hooks = async () =>
      (await must('iptables-save', ['-t', 'filter']))
        .split('\n')
        .filter((l) => l === '-A FORWARD -j PIPEWRIGHT-FORWARD').length;
    for (const [dir, br, subnet] of [
      [dirA, brA, '10.247.20.0/24'],
      [dirB, brB, '10.247.21.0/24'],
    ]) {
      t.equal((await pw(dir, 'pool', 'create', 'p', subnet)).exitCode, 0);
      const r = await pw(dir, 'network', 'create', 'n', '--bridge', br, '--pool', 'p');
      t.equal(r.exitCode, 0, r.stderr);
    }
    // Each store's delta believed the hook missing: a third program's copy makes it worse still.
    await must('iptables', ['-A', 'FORWARD', '-j', 'PIPEWRIGHT-FORWARD']);
    t.ok((await hooks()) >= 2, 'hooks piled up');
    const rm = await pw(dirA, 'network', 'rm', 'n');
    t.equal(rm.exitCode, 0, `network rm works with duplicated hooks: ${rm.stderr}`);
    const sync = await pw(dirB, 'firewall', 'sync');
    t.equal(sync.exitCode, 0, sync.stderr);
    t.equal(await hooks(), 1, "firewall sync leaves exactly one hook, for the other store's network");
    t.match(
      (await must('iptables-save', ['-t', 'filter'])).toString(),
      `-A PIPEWRIGHT-FORWARD -i ${brB} -o ${brB} -j ACCEPT`,
      "and puts back the other store's rules",
    );
    t.equal((await pw(dirB, 'firewall', 'sync')).stdout.trim(), 'firewall in sync: 1 rule(s)');
    t.equal((await pw(dirB, 'network', 'rm', 'n')).exitCode, 0);
    t.equal(await firewallSnapshot(), before, 'the rule set is as it was');
  },
);
