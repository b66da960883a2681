/**
 * A real `docker run --net=none` busybox container, found through the Engine API, gets a veth on a
 * pipewright bridge and answers a peer in another namespace; pipework's argv and route passthrough
 * work on it too.
 */
import t, { type Test } from 'tap';
import {
  cli,
  dockerUp,
  inNs,
  isRoot,
  must,
  netns,
  ping,
  PIPEWORK_BIN,
  removeLinkAtEnd,
  sh,
  stateDir,
  TEST_IMAGE,
  uniq,
} from '../helpers/host.js';
import { execa } from 'execa';

const docker = isRoot && (await dockerUp());
const SKIP = !docker && 'needs root and a running Docker engine (scripts/test.sh starts one)';

async function container(t: Test): Promise<string> {
  const name = uniq('c');
  await must('docker', ['run', '-d', '--net=none', '--name', name, TEST_IMAGE, 'sleep', '3600']);
  t.teardown(() => sh('docker', ['rm', '-f', name]));
  return name;
}

t.test('docker --net=none container on a bridge', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const name = await container(t);
  const peer = await netns(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);

  const r = await cli(dir, ['attach', br, name, '10.235.0.2/24@10.235.0.1', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  t.equal(res.guest.kind, 'docker');
  t.equal(res.guest.name, name);
  t.match(res.guest.id, /^[0-9a-f]{64}$/, 'recorded by container ID');
  t.equal((await cli(dir, ['attach', br, peer, '10.235.0.3/24'])).exitCode, 0);

  const inside = await must('docker', ['exec', name, 'ip', '-o', 'addr', 'show', 'eth0']);
  t.match(inside, /inet 10\.235\.0\.2\/24/, 'the container sees its address');
  t.match(await must('docker', ['exec', name, 'ip', 'route']), /default via 10\.235\.0\.1/);
  t.ok(await ping(peer, '10.235.0.2'), 'peer reaches the container');
  t.equal(
    (await execa('docker', ['exec', name, 'ping', '-c', '1', '-W', '2', '10.235.0.3'], { reject: false })).exitCode,
    0,
    'container reaches the peer',
  );

  const route = await cli(dir, ['route', `docker:${name}`, 'add', '10.236.0.0/16', 'via', '10.235.0.3']);
  t.equal(route.exitCode, 0, route.stderr);
  t.match(await must('docker', ['exec', name, 'ip', 'route']), /10\.236\.0\.0\/16 via 10\.235\.0\.3/);

  const inspect = JSON.parse((await cli(dir, ['inspect', name, '--json'])).stdout);
  t.equal(inspect[0].status, 'ok');
  t.same(inspect[0].kernel.addresses, ['10.235.0.2/24']);

  t.equal((await cli(dir, ['detach', `docker:${name}`])).exitCode, 0);
  t.match(await must('docker', ['exec', name, 'ip', '-o', 'link']), /^1: lo/, 'only lo is left');
  t.notMatch(await must('docker', ['exec', name, 'ip', '-o', 'link']), /eth0/);
  t.equal((await cli(dir, ['detach', peer])).exitCode, 0);
});

t.test('pipework command lines work unchanged', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const name = await container(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  const env = { PIPEWRIGHT_STATE_DIR: dir };
  const pw = (args: string[]) => execa('node', [PIPEWORK_BIN, ...args], { reject: false, env });

  let r = await pw([br, name, '192.168.231.5/24@192.168.231.1']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(
    await must('docker', ['exec', name, 'ip', '-o', 'addr', 'show', 'eth1']),
    /192\.168\.231\.5\/24/,
    'eth1 by default, as pipework',
  );
  r = await pw([br, '-i', 'eth2', '-l', `${br}h`, name, '192.168.231.6/24', 'U:web']);
  t.equal(r.exitCode, 0, r.stderr);
  const eth2 = await must('docker', ['exec', name, 'cat', '/sys/class/net/eth2/address']);
  const { macFromText } = await import('../../src/model/mac.js');
  t.equal(eth2.trim(), macFromText('web'), 'U:web gives the derived MAC');
  t.ok((await must('ip', ['-o', 'link', 'show', `${br}h`])).includes(`master ${br}`), '-l names the host end');
  r = await pw(['route', name, 'add', '10.237.0.0/16', 'via', '192.168.231.1']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(await must('docker', ['exec', name, 'ip', 'route']), /10\.237\.0\.0\/16 via 192\.168\.231\.1/);
  r = await pw(['--wait']);
  t.equal(r.exitCode, 2);
  t.match(r.stderr, /--wait needs a tool inside the container/);
  t.equal((await cli(dir, ['detach', name])).exitCode, 0);
});

t.test('a bare name that is both a container and a netns is ambiguous', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const name = await container(t);
  await must('ip', ['netns', 'add', name]);
  t.teardown(() => sh('ip', ['netns', 'del', name]));
  const r = await cli(dir, ['attach', uniq('br'), name, '10.238.0.2/24']);
  t.equal(r.exitCode, 2);
  t.match(r.stderr, new RegExp(`write docker:${name} or netns:${name}`));
  t.equal((await inNs(name, ['ip', 'link', 'show', 'eth0'])).exitCode, 1);
});

t.test('IPv6 into a --net=none container, where Docker turned IPv6 off', { skip: SKIP }, async (t) => {
  const dir = stateDir(t);
  const name = await container(t);
  const peer = await netns(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  const r = await cli(dir, ['--verbose', 'attach', br, name, '10.235.1.2/24', 'fd35::2/64']);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stderr, /disable_ipv6=0/, '--verbose says IPv6 was turned on for the interface');
  t.equal((await cli(dir, ['attach', br, peer, 'fd35::3/64'])).exitCode, 0);
  t.match(
    await must('docker', ['exec', name, 'ip', '-o', '-6', 'addr', 'show', 'eth0']),
    /inet6 fd35::2\/64/,
    'the container holds its IPv6 address',
  );
  t.equal(
    (await inNs(peer, ['ping', '-6', '-c', '1', '-W', '2', 'fd35::2'])).exitCode,
    0,
    'a peer reaches it over IPv6',
  );
  t.equal((await cli(dir, ['detach', name])).exitCode, 0);
  t.equal((await cli(dir, ['detach', peer])).exitCode, 0);
});
