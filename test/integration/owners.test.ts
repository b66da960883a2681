/**
 * Whose is it? Recorded processes and guests are told from later ones by their identity, not by a
 * pid or a path alone: a namespace file that names another namespace now is a gone guest, a
 * recorded DHCP client's pid held by another process is not stopped, and a stopped container is
 * not a removed one.
 */
import t from 'tap';
import { execa } from 'execa';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../src/db/store.js';
import {
  cli,
  dockerUp,
  isRoot,
  netns,
  processEnded,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  stateDir,
  TEST_IMAGE,
  uniq,
  until,
} from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);
const netnsOf = async (pid: number | string) =>
  (await execa('readlink', [`/proc/${pid}/ns/net`], { reject: false })).stdout;

t.test(
  'a /proc/<pid>/ns/net guest whose pid now has another namespace is gone: gc undoes it and releases its lease',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const guest = await netns(t);
    const br = uniq('P');
    removeLinkAtEnd(t, br);
    // A process in the guest's namespace that, on a line, execs itself into a new one (same pid): a
    // pid reused after a reboot.
    const proc = execa('ip', ['netns', 'exec', guest, 'sh', '-c', 'read x; exec unshare -n sleep 600'], {
      reject: false,
    });
    t.teardown(() => proc.kill('SIGKILL'));
    const pid = proc.pid!;
    const host = await netnsOf('self');
    const first = await until(async () => ![host, ''].includes(await netnsOf(pid)), 5000);
    t.ok(first >= 0, 'the process is in the guest');
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.246.1.0/24'])).exitCode, 0);
    const attach = await cli(dir, ['attach', br, `/proc/${pid}/ns/net`, 'pool:p']);
    t.equal(attach.exitCode, 0, attach.stderr);
    const was = await netnsOf(pid);
    proc.stdin!.write('go\n');
    t.ok((await until(async () => (await netnsOf(pid)) !== was, 5000)) >= 0, 'the same pid now has another namespace');

    const gc = await cli(dir, ['gc', '--json']);
    t.equal(gc.exitCode, 0, gc.stderr);
    t.match(JSON.parse(gc.stdout), [
      { kind: 'attachment', target: `/proc/${pid}/ns/net eth0`, reason: 'guest no longer exists' },
    ]);
    t.same(await json(dir, ['ls']), [], 'the record is gone');
    t.same(await json(dir, ['lease', 'ls']), [], 'and its lease released');
  },
);

t.test('a recorded DHCP client whose pid another udhcpc holds now is left running by detach', { skip }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  const br = uniq('Q');
  removeLinkAtEnd(t, br);
  // An unrelated process whose name is udhcpc (the host's own client, say), on the pid a record names.
  const bin = mkdtempSync(join(tmpdir(), 'pipewright-udhcpc-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  copyFileSync('/bin/sleep', join(bin, 'udhcpc'));
  await sh('chmod', ['755', join(bin, 'udhcpc')]);
  const other = execa(join(bin, 'udhcpc'), ['600'], { reject: false });
  t.teardown(() => other.kill('SIGKILL'));
  t.equal(readFileSync(`/proc/${other.pid}/comm`, 'utf8').trim(), 'udhcpc');
  t.equal((await cli(dir, ['attach', br, `netns:${guest}`, '10.246.2.2/24'])).exitCode, 0);
  // As a record from before a reboot reads: the client's pid, with the start time that client had.
  const store = Store.open(dir);
  store.db.prepare(`UPDATE attachments SET dhcp_pid = ?, dhcp_start = '1'`).run(other.pid);
  store.close();

  const detach = await cli(dir, ['detach', `netns:${guest}`]);
  t.equal(detach.exitCode, 0, detach.stderr);
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(processEnded(other.pid!), 'the other udhcpc still runs');
  t.same(await json(dir, ['ls']), [], 'the attachment is gone');
});

const docker = isRoot && (await dockerUp());

t.test(
  'gc leaves a stopped container plumbed; once started again, its interface comes back with the same lease',
  { skip: !docker && 'needs root and a running Docker engine' },
  async (t) => {
    const dir = stateDir(t);
    const br = uniq('S');
    removeLinkAtEnd(t, br);
    const name = uniq('c');
    t.teardown(() => sh('docker', ['rm', '-f', name]));
    const run = await sh('docker', ['run', '-d', '--name', name, '--network', 'none', TEST_IMAGE, 'sleep', '600']);
    t.equal(run.exitCode, 0, run.stderr);
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.246.3.0/24'])).exitCode, 0);
    const attach = await cli(dir, ['attach', br, `docker:${name}`, 'pool:p']);
    t.equal(attach.exitCode, 0, attach.stderr);
    const leases = await json(dir, ['lease', 'ls']);
    t.equal(leases.length, 1);

    t.equal((await sh('docker', ['stop', '-t', '0', name])).exitCode, 0);
    const gc = await cli(dir, ['gc', '--json']);
    t.equal(gc.exitCode, 0, gc.stderr);
    t.same(JSON.parse(gc.stdout), [], 'gc undid nothing');
    t.equal((await json(dir, ['ls'])).length, 1, 'the record is kept');
    t.same(await json(dir, ['lease', 'ls']), leases, 'and the lease');

    t.equal((await sh('docker', ['start', name])).exitCode, 0);
    // What watch does when the container starts: the recorded attachment again.
    const again = await cli(dir, ['attach', br, `docker:${name}`, 'pool:p']);
    t.equal(again.exitCode, 0, again.stderr);
    const inside = await sh('docker', ['exec', name, 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    t.match(
      inside.stdout,
      new RegExp(` ${leases[0].address.replace(/\./g, '\\.')}/24 `),
      'eth0 is back with the same address',
    );
    t.equal((await cli(dir, ['detach', `docker:${name}`])).exitCode, 0);
  },
);
