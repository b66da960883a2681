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
  firewallNamesOf,
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
import type { FirewallNames } from '../../src/net/firewall/names.js';

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

for (const firewall of ['iptables', 'nftables']) {
  t.test(
    `two stores on one host keep each other's published ports (${firewall})`,
    { skip: !isRoot && ROOT_REASON },
    async (t) => {
      const host = await testHost(t);
      const [dirA, dirB] = [stateDir(t), stateDir(t)];
      const [nameA, nameB] = [firewallNamesOf(dirA), firewallNamesOf(dirB)];
      t.not(nameA.nft4, nameB.nft4, 'each store has objects of its own');
      const pw = (dir: string, ...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
      const [guestA, guestB] = [await netns(t), await netns(t)];
      for (const [dir, guest, br, subnet, port] of [
        [dirA, guestA, uniq('y'), '10.247.20.0/24', '18101'],
        [dirB, guestB, uniq('z'), '10.247.21.0/24', '18102'],
      ]) {
        t.equal((await pw(dir, 'pool', 'create', 'p', subnet)).exitCode, 0);
        t.equal((await pw(dir, 'network', 'create', 'n', '--bridge', br, '--pool', 'p')).exitCode, 0);
        const r = await pw(dir, 'attach', br, guest, 'pool:p', '-p', `${port}:80`);
        t.equal(r.exitCode, 0, r.stderr);
      }
      const published = async (names: FirewallNames, port: string) =>
        firewall === 'nftables'
          ? (await host.run('nft', ['list', 'table', ...names.nft4.split(' ')]).catch(() => '')).includes(
              `tcp . ${port} :`,
            )
          : (await host.run('iptables-save', ['-t', 'nat'])).includes(
              `-A ${names.chains.dnat} -p tcp -m tcp --dport ${port} `,
            );
      t.ok(await published(nameA, '18101'), "A's port is published after B's attach");
      t.ok(await published(nameB, '18102'), "and B's");
      t.equal((await pw(dirB, 'detach', guestB)).exitCode, 0);
      t.equal((await pw(dirB, 'network', 'rm', 'n')).exitCode, 0);
      t.ok(await published(nameA, '18101'), "A's port is still published after B left");
      t.notOk(await published(nameB, '18102'), "B's is gone");
      t.equal((await pw(dirA, 'detach', guestA)).exitCode, 0);
      t.equal((await pw(dirA, 'network', 'rm', 'n')).exitCode, 0);
    },
  );
}
