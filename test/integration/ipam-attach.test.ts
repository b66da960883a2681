/**
 * Pools through the CLI and the kernel: pool:<name> addresses, static addresses checked against
 * pools, leases released at detach, and gc after guests vanish or after pipewright is killed with
 * SIGKILL in the middle of an attach.
 */
import t from 'tap';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cli,
  CLI,
  hostLinks,
  inNs,
  isRoot,
  must,
  netns,
  ping,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  stateDir,
  uniq,
} from '../helpers/host.js';

const leases = async (dir: string) =>
  JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout) as { address: string; owner: string }[];

t.test('pool addresses on attach, released on detach', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const [a, b, c] = [await netns(t), await netns(t), await netns(t)];
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  t.equal((await cli(dir, ['pool', 'create', 'lan', '10.242.0.0/24', '--exclude', '10.242.0.2'])).exitCode, 0);
  const ra = JSON.parse((await cli(dir, ['attach', br, a, 'pool:lan', '--json'])).stdout);
  t.same(ra.addresses, ['pool:lan']);
  t.equal((await cli(dir, ['attach', br, b, 'pool:lan'])).exitCode, 0);
  t.match(
    (await inNs(a, ['ip', '-o', '-4', 'addr', 'show', 'eth0'])).stdout,
    /10\.242\.0\.3\/24/,
    'first free, exclusion skipped',
  );
  t.match((await inNs(b, ['ip', '-o', '-4', 'addr', 'show', 'eth0'])).stdout, /10\.242\.0\.4\/24/);
  t.match((await inNs(a, ['ip', 'route'])).stdout, /default via 10\.242\.0\.1/, "pool's gateway is the default route");
  t.ok(await ping(a, '10.242.0.4'));
  t.same(
    (await leases(dir)).map((l) => l.owner),
    [`netns:${a}/eth0`, `netns:${b}/eth0`],
  );

  const taken = await cli(dir, ['attach', br, c, '10.242.0.4/24']);
  t.equal(taken.exitCode, 1);
  t.match(taken.stderr, new RegExp(`10\\.242\\.0\\.4 in pool lan is taken by netns:${b}/eth0`));
  t.equal((await inNs(c, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'refused attach left nothing');
  t.match((await cli(dir, ['attach', br, c, '10.242.0.9/16'])).stderr, /prefix is \/24/);
  t.equal((await cli(dir, ['attach', br, c, '10.242.0.9/24'])).exitCode, 0, 'a free static address is leased');
  t.ok((await leases(dir)).some((l) => l.address === '10.242.0.9' && l.owner === `netns:${c}/eth0`));

  t.equal((await cli(dir, ['detach', a])).exitCode, 0);
  t.notOk(
    (await leases(dir)).some((l) => l.address === '10.242.0.3'),
    'detach released the lease',
  );
  t.match((await cli(dir, ['pool', 'rm', 'lan'])).stderr, /still has 2 lease/);
  for (const g of [b, c]) t.equal((await cli(dir, ['detach', g])).exitCode, 0);
  t.same(await leases(dir), []);
  t.equal((await cli(dir, ['pool', 'rm', 'lan'])).exitCode, 0);
});

t.test('gc: vanished guests and orphaned leases', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const a = await netns(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  await cli(dir, ['pool', 'create', 'gcp', '10.243.0.0/24']);
  await cli(dir, ['lease', 'reserve', 'gcp', '10.243.0.100', '--owner', 'printer']);
  const hostEnd = JSON.parse((await cli(dir, ['attach', br, a, 'pool:gcp', '--json'])).stdout).hostLink;
  // An orphan: a lease of this host (its id is kept in the state dir) whose owner has no attachment.
  const { Store } = await import('../../src/db/store.js');
  const { Ipam } = await import('../../src/net/ipam/allocator.js');
  const { SqliteLeaseBackend } = await import('../../src/db/ipam-backend.js');
  const store = Store.open(dir);
  await new Ipam(new SqliteLeaseBackend(store), readFileSync(join(dir, 'host-id'), 'utf8').trim()).allocate(
    'gcp',
    'netns:ghost/eth0',
  );
  store.close();
  await must('ip', ['netns', 'del', a]);

  const dry = JSON.parse((await cli(dir, ['gc', '--dry-run', '--json'])).stdout);
  t.same(dry.map((x: { kind: string }) => x.kind).sort(), ['attachment', 'lease']);
  t.equal((await leases(dir)).length, 3, 'dry run changed nothing');
  const done = await cli(dir, ['gc']);
  t.equal(done.exitCode, 0, done.stderr);
  t.match(done.stdout, /removed attachment .* guest no longer exists/);
  t.same(
    (await leases(dir)).map((l) => l.owner),
    ['printer'],
    'only the reservation is left',
  );
  t.notOk((await hostLinks()).includes(hostEnd), 'host end is gone');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), []);
  t.match((await cli(dir, ['gc'])).stdout, /nothing to collect/, 'gc again: nothing');
});

t.test('kill -9 in the middle of an attach, then gc', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const a = await netns(t);
  const br = uniq('br');
  removeLinkAtEnd(t, br);
  // No DHCP server on this bridge: the attach waits for a lease; we kill it while it waits.
  const child = execa(CLI, ['attach', br, a, 'dhcp'], { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir } });
  for (let i = 0; i < 100 && (await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode !== 0; i++)
    await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGKILL');
  await child;
  const ls = JSON.parse((await cli(dir, ['ls', '--json'])).stdout);
  t.equal(ls[0]?.status, 'pending', 'the killed attach left a pending record');
  t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 0, 'and its interface');
  const g = await cli(dir, ['gc', '--json']);
  t.equal(g.exitCode, 0, g.stderr);
  t.match(JSON.parse(g.stdout), [{ kind: 'attachment', reason: /died before finishing/ }]);
  t.equal((await inNs(a, ['ip', 'link', 'show', 'eth0'])).exitCode, 1, 'gc removed the half-made interface');
  t.notOk((await hostLinks()).includes(br), 'and the bridge the attach had created');
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await sh('ip', ['netns', 'pids', a])).stdout.trim(), '', 'and stopped its DHCP client');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), []);
});
