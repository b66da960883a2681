/**
 * `attach ... dhcp` against a stock dnsmasq serving a test bridge from its own namespace: the guest
 * gets a lease from the range and its default route, the client keeps running while attached,
 * and detach stops it. A rogue server's offer outside the bridge's subnet is refused.
 */
import t from 'tap';
import { execa } from 'execa';
import {
  cli,
  firewallSnapshot,
  inNs,
  isRoot,
  must,
  netns,
  processEnded,
  removeLinkAtEnd,
  ROOT_REASON,
  stateDir,
  uniq,
} from '../helpers/host.js';

t.test('dhcp lease from dnsmasq', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [server, client] = [await netns(t, 's'), await netns(t, 'c')];
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  t.equal((await cli(dir, ['attach', br, server, '10.239.0.1/24'])).exitCode, 0);
  const dnsmasq = execa(
    'ip',
    ['netns', 'exec', server, ...dnsmasqArgs('10.239.0.100,10.239.0.150', dir), '--dhcp-option=3,10.239.0.1'],
    { reject: false },
  );
  t.teardown(() => {
    dnsmasq.kill();
  });

  const r = await cli(dir, ['attach', br, client, 'dhcp', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).dhcp, true);
  const addr = JSON.parse((await inNs(client, ['ip', '-j', '-4', 'addr', 'show', 'eth0'])).stdout)[0].addr_info[0];
  const last = Number(addr.local.split('.')[3]);
  t.ok(addr.local.startsWith('10.239.0.') && last >= 100 && last <= 150, `leased ${addr.local} is in the range`);
  t.equal(addr.prefixlen, 24);
  t.match(
    (await inNs(client, ['ip', 'route'])).stdout,
    /default via 10\.239\.0\.1/,
    'router option became the default route',
  );

  const rec = JSON.parse((await cli(dir, ['inspect', client, '--json'])).stdout)[0];
  t.same(rec.kernel.addresses, [`${addr.local}/24`]);
  const pids = (await execa('ip', ['netns', 'pids', client])).stdout.split('\n').filter(Boolean);
  t.equal(pids.length, 1, 'one DHCP client runs in the guest');
  t.equal((await execa('cat', [`/proc/${pids[0]}/comm`])).stdout, 'udhcpc');

  t.equal((await cli(dir, ['detach', client])).exitCode, 0);
  await new Promise((r) => setTimeout(r, 300));
  t.ok(processEnded(Number(pids[0])), 'detach stopped the DHCP client');
  t.equal((await cli(dir, ['detach', server])).exitCode, 0);
});

t.test(
  'a rogue DHCP server cannot give a guest an address outside the bridge subnet',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const [rogue, client] = [await netns(t, 's'), await netns(t, 'c')];
    const br = uniq('br');
    removeLinkAtEnd(t, br);
    t.equal((await cli(dir, ['attach', br, rogue, '10.239.1.1/24'])).exitCode, 0);
    await must('ip', ['address', 'add', '10.239.1.254/24', 'dev', br]);
    // The rogue also holds an address of another network, and offers that network's addresses.
    await must('ip', ['-n', rogue, 'address', 'add', '10.77.0.1/24', 'dev', 'eth0']);
    const dnsmasq = execa('ip', ['netns', 'exec', rogue, ...dnsmasqArgs('10.77.0.100,10.77.0.150', dir)], {
      reject: false,
    });
    t.teardown(() => void dnsmasq.kill());
    const rules = await firewallSnapshot();
    const r = await cli(dir, ['attach', br, client, 'dhcp', '-p', '18310:80']);
    t.equal(r.exitCode, 1);
    t.match(
      r.stderr,
      /^pipewright: .*the DHCP server on \S+ offered 10\.77\.0\.\d+\/24, outside \S+'s subnets \(10\.239\.1\.254\/24\); is a rogue DHCP server/,
    );
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.equal(await firewallSnapshot(), rules, 'no rule was written for the offered address');
    t.equal(JSON.parse((await cli(dir, ['ls', '--json'])).stdout).length, 1, 'only the server is attached');
    t.equal((await inNs(client, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'the guest interface is gone again');
    t.equal((await cli(dir, ['detach', rogue])).exitCode, 0);
  },
);

function dnsmasqArgs(range: string, dir: string): string[] {
  return [
    'dnsmasq',
    '--no-daemon',
    '--conf-file=/dev/null',
    '--port=0',
    '--user=root',
    '--interface=eth0',
    '--bind-interfaces',
    `--dhcp-range=${range},255.255.255.0,1h`,
    `--dhcp-leasefile=${dir}/dnsmasq.leases`,
  ];
}
