/**
 * firewalld (nftables backend) on a stand-in host: firewalld runs inside the test's netns and a
 * private mount namespace with its own D-Bus system bus and its own copy of /etc/firewalld, never
 * on the host's. Its forward chain ends in a reject, so a network is refused (one line, naming
 * firewalld's way through) until the admin puts the bridges in a zone that accepts (trusted);
 * then forwarding, masquerade and a published port work, and keep working across
 * `firewall-cmd --reload`.
 */
import t, { type Test as Tap } from 'tap';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  firewallNamesOf,
  askPeer,
  isRoot,
  netns,
  peerServer,
  ping,
  ROOT_REASON,
  stateDir,
  testHost,
  until,
} from '../helpers/host.js';
import { toolInstalled } from '../../src/util/paths.js';

const missing = ['firewalld', 'firewall-cmd', 'dbus-daemon'].filter((x) => !toolInstalled(x));
const skip = !isRoot ? ROOT_REASON : missing.length ? `needs ${missing.join(', ')}` : false;

/** firewalld in the host's netns and a mount namespace of its own; firewall-cmd runs there too. */
async function startFirewalld(t: Tap, ns: string) {
  const etc = mkdtempSync(join(tmpdir(), 'pipewright-firewalld-'));
  t.teardown(() => rmSync(etc, { recursive: true, force: true }));
  const script = [
    'set -e',
    'mount -t tmpfs tmpfs /run/dbus',
    'mkdir -p /run/firewalld && mount -t tmpfs tmpfs /run/firewalld',
    'mount -t tmpfs tmpfs /var/log',
    `cp -a /etc/firewalld/. ${etc}/ && mount --bind ${etc} /etc/firewalld`,
    'dbus-daemon --system --fork --nopidfile',
    'exec firewalld --nofork --nopid',
  ].join('\n');
  const proc = execa('ip', ['netns', 'exec', ns, 'unshare', '-m', '--propagation', 'private', 'bash', '-c', script], {
    reject: false,
  });
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await proc;
  });
  const cmd = (...args: string[]) =>
    execa('nsenter', ['-t', String(proc.pid), '-m', '-n', 'firewall-cmd', ...args], { reject: false });
  t.not(await until(async () => (await cmd('--state')).exitCode === 0, 20_000), -1, 'firewalld runs');
  return cmd;
}

t.test('firewalld: refused until the bridges are in a zone, then works across reloads', { skip }, async (t) => {
  const host = await testHost(t);
  const fw = await startFirewalld(t, host.ns);
  const dir = stateDir(t);
  const pw = (...args: string[]) => host.cli(dir, ['--firewall', 'nftables', ...args]);
  t.equal((await pw('pool', 'create', 'wa', '10.247.91.0/24')).exitCode, 0);
  t.equal((await pw('pool', 'create', 'wb', '10.247.92.0/24')).exitCode, 0);
  const refused = await pw('network', 'create', 'na', '--bridge', 'bra', '--pool', 'wa');
  t.equal(refused.exitCode, 1);
  t.match(
    refused.stderr.trim(),
    /^pipewright: nftables chain inet firewalld filter_FORWARD \(a last rule that drops\) would drop bra's forwarded traffic; .*firewall-cmd --permanent --zone=trusted --add-interface=bra/,
  );

  for (const br of ['bra', 'brb'])
    t.equal((await fw('--permanent', '--zone=trusted', `--add-interface=${br}`)).exitCode, 0);
  t.equal((await fw('--reload')).exitCode, 0);
  const [srv, client] = [await netns(t), await netns(t)];
  for (const args of [
    ['network', 'create', 'na', '--bridge', 'bra', '--pool', 'wa'],
    ['network', 'create', 'nb', '--bridge', 'brb', '--pool', 'wb', '--masquerade'],
    ['attach', 'bra', srv, 'pool:wa', '-p', '18591:8080'],
    ['attach', 'brb', client, 'pool:wb'],
  ]) {
    const r = await pw(...args);
    t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
  }
  t.teardown(() => pw('detach', srv).then(() => pw('detach', client)));
  await peerServer(t, srv, 'tcp', 8080);
  const works = async (when: string) => {
    t.ok(await ping(client, '10.247.91.2'), `${when}: forwarding and masquerade (ping across networks)`);
    t.equal(await askPeer(client, 'tcp', '10.247.92.1', 18591), '10.247.91.1', `${when}: the published port`);
  };
  await works('in a trusted zone');
  t.equal((await fw('--reload')).exitCode, 0);
  await works('after firewall-cmd --reload');
  t.match(
    await host.run('nft', ['list', 'tables']),
    `table ${firewallNamesOf(dir).nft4}`,
    "firewalld's reload leaves pipewright's table",
  );
});
