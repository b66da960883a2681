/**
 * Debian 12's firewalld (1.3, nftables backend) on a stand-in host: firewalld runs inside the
 * test's netns and a private mount namespace with its own D-Bus system bus and its own copy of
 * /etc/firewalld, never on the host's. Its forward chain ends in a reject, so a network is refused
 * (one line, naming firewalld's way through) until the admin puts the bridges in a zone that
 * accepts (trusted); then forwarding, masquerade and a published port work, and keep working
 * across `firewall-cmd --reload` (test/helpers/firewalld.ts; Debian 13's firewalld 2.3:
 * test/vm/firewalld2.test.ts).
 */
import t, { type Test as Tap } from 'tap';
import { execa, type Result } from 'execa';
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
  routedClient,
  stateDir,
  testHost,
  until,
} from '../helpers/host.js';
import { toolInstalled } from '../../src/util/paths.js';
import { firewalldScenario } from '../helpers/firewalld.js';

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
  const outcome = (r: Result) => ({ code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) });
  await firewalldScenario(t, {
    pw: async (...args) => outcome(await host.cli(dir, ['--firewall', 'nftables', ...args])),
    firewallCmd: async (...args) => outcome(await fw(...args)),
    outside: await routedClient(t, host.ns),
    guest: () => netns(t),
    serve: (ns, port) => peerServer(t, ns, 'tcp', port),
    ping,
    ask: (ns, addr, port) => askPeer(ns, 'tcp', addr, port),
    tables: () => host.run('nft', ['list', 'tables']),
    table: firewallNamesOf(dir).nft4,
  });
});
