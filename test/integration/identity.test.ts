/**
 * Identities that outlive nothing: a recorded /proc/<pid>/ns/net path can name another namespace
 * once the pid is reused, and an engine that does not answer says nothing about its containers.
 * pipewright must neither touch the other namespace nor take "no answer" for "removed".
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Store } from '../../src/db/store.js';
import { cli, inNs, isRoot, must, netns, nicPair, ROOT_REASON, stateDir } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;

/** Rewrites a record as a test stand-in for what time does to it (a reused pid, a container). */
function rewrite(dir: string, sql: string, ...args: unknown[]): void {
  const store = Store.open(dir);
  try {
    store.db.prepare(sql).run(...args);
  } finally {
    store.close();
  }
}

t.test('detach never removes an interface from a namespace the recorded path names now', { skip }, async (t) => {
  const dir = stateDir(t);
  const nic = await nicPair(t, 'i');
  const [guest, other] = [await netns(t), await netns(t)];
  t.equal((await cli(dir, ['attach', nic, guest, '10.251.0.2/24'])).exitCode, 0, 'a macvlan in the guest');
  // Another namespace with an eth0 of its own, and the record's path pointed at it (as a reused pid would).
  await must('ip', ['-n', other, 'link', 'add', 'eth0', 'type', 'dummy']).catch(() =>
    must('ip', ['-n', other, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']),
  );
  rewrite(dir, 'UPDATE attachments SET netns_path = ?', `/run/netns/${other}`);
  const r = await cli(dir, ['detach', guest]);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal((await inNs(other, ['ip', 'link', 'show', 'eth0'])).exitCode, 0, "the other namespace's eth0 is untouched");
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), [], 'the record is gone');
});

t.test('an engine that does not answer is not "every container removed"', { skip }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  await cli(dir, ['pool', 'create', 'p', '10.251.4.0/24']);
  t.equal((await cli(dir, ['attach', `${guest}br`.slice(0, 15), guest, 'pool:p'])).exitCode, 0);
  t.teardown(() => must('ip', ['link', 'del', `${guest}br`.slice(0, 15)]).catch(() => {}));
  // The record as a container's, the lease with it.
  const [rec] = JSON.parse((await cli(dir, ['ls', '--json'])).stdout);
  const id = 'f'.repeat(64);
  rewrite(dir, `UPDATE attachments SET guest_kind = 'docker', guest_id = ?`, id);
  rewrite(dir, 'UPDATE leases SET owner = ?', `docker:${id}/eth0`);
  const gc = await cli(dir, ['gc'], { DOCKER_HOST: 'unix:///run/pipewright-test-no-such.sock' });
  t.equal(gc.exitCode, 1);
  t.match(gc.stderr, /socket .* is missing.*start Docker/);
  t.equal(JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout).length, 1, 'the lease is kept');
  t.equal((await inNs(guest, ['ip', 'link', 'show', 'eth0'])).exitCode, 0, 'the interface is kept');
  t.equal(rec.ifname, 'eth0');
  rewrite(dir, `UPDATE attachments SET guest_kind = 'netns', guest_id = ?`, guest);
  rewrite(dir, 'UPDATE leases SET owner = ?', `netns:${guest}/eth0`);
  t.equal((await cli(dir, ['detach', guest])).exitCode, 0);
});

/** A socket file nobody listens on, as an engine killed with -9 leaves it. */
async function staleSocket(t: Test): Promise<string> {
  const path = join(mkdtempSync(join(tmpdir(), 'pw-stale-')), 'docker.sock');
  t.teardown(() => rmSync(dirname(path), { recursive: true, force: true }));
  const listen = `require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))`;
  await execa(process.execPath, ['-e', listen, path], { reject: false });
  return path;
}

t.test('a bare netns name is the guest while the engine socket is stale', { skip }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  const env = { DOCKER_HOST: `unix://${await staleSocket(t)}` };
  const br = `${guest}br`.slice(0, 15);
  t.teardown(() => must('ip', ['link', 'del', br]).catch(() => {}));
  const r = await cli(dir, ['attach', br, guest, '10.251.5.2/24'], env);
  t.equal(r.exitCode, 0, r.stderr);
  t.match(
    (await inNs(guest, ['ip', '-br', 'addr', 'show', 'eth0'])).stdout,
    /10\.251\.5\.2\/24/,
    'the netns has the address',
  );
  const none = await cli(dir, ['attach', br, `${guest}x`, '10.251.5.3/24'], env);
  t.equal(none.exitCode, 1, 'no netns of that name: the unreachable engine is the error');
  t.match(none.stderr, /cannot reach the Docker engine at .*docker\.sock/);
  t.equal((await cli(dir, ['detach', guest], env)).exitCode, 0);
});
