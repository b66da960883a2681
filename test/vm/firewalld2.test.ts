/**
 * Debian 13's firewalld (2.3, nftables backend, nftables 1.1) in the Debian 13 environment of
 * test/vm/trixie.ts (the docker root, `build-trixie-root.sh <dir> docker`, which has firewalld and
 * D-Bus too): firewalld and its D-Bus system bus run in that environment's private mount namespace
 * and network namespace, never on the host's, and pipewright runs from the checkout there. The
 * scenario is the Debian 12 test's (test/helpers/firewalld.ts): refused in one line until the
 * bridges are in the trusted zone, then forwarding, masquerade and a published port, also across
 * `firewall-cmd --reload`, from a guest and from another host; and what firewalld 2.3's
 * StrictForwardPorts=yes changes: a published port answers no one, and pipewright refuses -p in one line.
 */
import t from 'tap';
import { CHECKOUT, rootForTests, TRIXIE_DOCKER_ROOT, TrixieEnv } from './trixie.js';
import { firewallNames } from '../../src/net/firewall/names.js';
import { firewalldScenario } from '../helpers/firewalld.js';
import { UPLINK } from '../helpers/host.js';

await rootForTests(t, TRIXIE_DOCKER_ROOT, 'docker');

const PW = `${CHECKOUT}/dist/bin/pipewright`;
const PEER = `${CHECKOUT}/test/helpers/peer.mjs`;
const STATE = { PIPEWRIGHT_STATE_DIR: '/tmp/pw-state' };
const secs = (since: number) => ((Date.now() - since) / 1000).toFixed(1);

t.test('firewalld 2.3: refused until the bridges are in a zone, then works across reloads', async (t) => {
  const started = Date.now();
  // Everything it starts (dbus-daemon, firewalld, peer servers) stays in its mount namespace: the stop kills it all.
  const env = await TrixieEnv.start(TRIXIE_DOCKER_ROOT);
  t.teardown(() => env.stop());
  await env.must('/bin/sh', ['-c', 'mkdir -p /run/dbus /tmp/pw-state && dbus-daemon --system --fork --nopidfile']);
  env.spawn('firewalld', ['--nofork', '--nopid']);
  const firewallCmd = (...args: string[]) => env.run('firewall-cmd', args);
  let state = await firewallCmd('--state');
  for (let i = 0; i < 80 && state.code !== 0; i++) {
    await new Promise((r) => setTimeout(r, 250));
    state = await firewallCmd('--state');
  }
  t.equal(state.code, 0, `firewalld runs: ${state.stderr}`);
  const version = (await firewallCmd('--version')).stdout.trim();
  t.match(version, /^2\.3\./, `firewalld ${version}`);
  t.comment(`environment and firewalld up in ${secs(started)} s`);

  // Another host: netns o, its veth's other end up0 in no zone (firewalld's default zone, public).
  await env.must('/bin/sh', [
    '-c',
    `set -e; ip netns add o; ip link add up0 type veth peer name up1 netns o
ip address add ${UPLINK.host4}/24 dev up0 && ip link set up0 up
ip -n o address add ${UPLINK.client4}/24 dev up1 && ip -n o link set up1 up && ip -n o link set lo up`,
  ]);
  let guests = 0;
  /** In the guest's netns only (nsenter, not `ip netns exec`: it stays in the environment's mount namespace). */
  const inGuest = (ns: string, cmd: string, args: string[]) =>
    env.run('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]);
  const ask = async (ns: string, addr: string, port: number) =>
    (await inGuest(ns, 'node', [PEER, 'client', 'tcp', addr, String(port)])).stdout.trim();
  const { client, port } = await firewalldScenario(t, {
    pw: (...args) => env.run(PW, ['--firewall', 'nftables', ...args], { env: STATE }),
    firewallCmd,
    guest: async () => {
      const ns = `g${guests++}`;
      await env.must('ip', ['netns', 'add', ns]);
      return ns;
    },
    serve: async (ns, port) => {
      const server = env.spawn('nsenter', [`--net=/run/netns/${ns}`, 'node', PEER, 'server', 'tcp', String(port)]);
      await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
    },
    ping: async (ns, addr) => (await inGuest(ns, 'busybox', ['ping', '-c', '1', '-W', '2', addr])).code === 0,
    ask,
    outside: 'o',
    tables: () => env.must('nft', ['list', 'tables']),
    table: firewallNames(STATE.PIPEWRIGHT_STATE_DIR).nft4,
  });

  // firewalld 2.3's StrictForwardPorts=yes (not in 1.3; default no): DNATed traffic that is not
  // firewalld's own forward-port is rejected before any zone is looked at (docs/ports.md).
  await env.must('sed', ['-i', 's/^StrictForwardPorts=no/StrictForwardPorts=yes/', '/etc/firewalld/firewalld.conf']);
  t.equal((await firewallCmd('--reload')).code, 0);
  t.match(
    await env.must('nft', ['list', 'chain', 'inet', 'firewalld', 'filter_FORWARD']),
    'ct status dnat jump filter_FORWARD_dnat',
    'StrictForwardPorts=yes: DNATed traffic goes to a chain of firewalld forward-ports only',
  );
  const rejected = 'error EHOSTUNREACH';
  t.equal(await ask('o', UPLINK.host4, port), rejected, 'StrictForwardPorts=yes: rejected from another host');
  t.equal(await ask(client, '10.247.92.1', port), rejected, 'and from a guest of a trusted bridge');
  // pipewright looks for it where ports are published: -p is refused in one line, nothing made.
  await env.must('ip', ['netns', 'add', 'strict']);
  const ls = async () => (await env.must(PW, ['ls', '--json'], { env: STATE })).trim();
  const attached = await ls();
  const more = await env.run(PW, ['--firewall', 'nftables', 'attach', 'brb', 'strict', 'pool:wb', '-p', '18592:8080'], {
    env: STATE,
  });
  t.equal(more.code, 1, 'attach -p fails');
  t.match(
    more.stderr,
    /^pipewright: firewalld rejects every published port .*StrictForwardPorts=yes.*firewall-cmd --reload/,
  );
  t.equal(more.stderr.trim().split('\n').length, 1, 'in one line');
  t.equal(await ls(), attached, 'nothing attached');
  t.equal(
    (await env.run(PW, ['attach', 'brb', 'strict', 'pool:wb'], { env: STATE })).code,
    0,
    'without -p it attaches',
  );
  t.equal((await env.run(PW, ['detach', 'strict'], { env: STATE })).code, 0);
  t.comment(`firewalld 2.3 test: ${secs(started)} s`);
});
