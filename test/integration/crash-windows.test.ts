/**
 * Windows between two steps, held open on purpose through the fault seam (PIPEWRIGHT_FAULT):
 * a kernel object made by several messages must not outlive a failure of the later ones, gc must
 * not take a lease for an orphan while its attach is under way, and a process that cannot come
 * back from a guest's namespace must stop before doing anything else there.
 */
import t from 'tap';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deleteHostLink } from '../../src/net/rtnetlink/rtnl.js';
import {
  CLI,
  cli,
  hostLinks,
  isRoot,
  must,
  netns,
  nicPair,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  stateDir,
  uniq,
  waitStopped,
} from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const FAIL_FINISH = { PIPEWRIGHT_FAULT: 'finish link:fail' };

t.test('a link whose later messages fail is deleted again (bridge, veth, host shim)', { skip }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  const br = uniq('H');
  removeLinkAtEnd(t, br);
  const before = await hostLinks();
  // A new bridge: created, then brought up; bringing it up fails.
  let r = await cli(dir, ['attach', br, guest, '10.251.8.2/24'], FAIL_FINISH);
  t.equal(r.exitCode, 1, 'the attach fails');
  t.match(r.stderr, /injected fault at "finish link/);
  t.same(await hostLinks(), before, 'no half-made bridge');
  // An existing bridge: the veth is created, then put on the bridge; that fails.
  await must('ip', ['link', 'add', br, 'type', 'bridge']);
  const withBridge = await hostLinks();
  r = await cli(dir, ['attach', br, guest, '10.251.8.2/24'], FAIL_FINISH);
  t.equal(r.exitCode, 1);
  t.same(await hostLinks(), withBridge, 'no half-made veth on the host');
  t.equal((await sh('ip', ['-n', guest, 'link', 'show', 'eth0'])).exitCode, 1, 'nor its end in the guest');
  // A host shim: created, then addressed; that fails.
  const nic = await nicPair(t, 'h');
  const withNic = await hostLinks();
  r = await cli(dir, ['attach', nic, guest, '10.251.9.2/24', '--host-shim', '10.251.9.250/24'], FAIL_FINISH);
  t.equal(r.exitCode, 1);
  t.same(await hostLinks(), withNic, 'no half-made host shim');
  t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), [], 'no record either');
});

t.test(
  'gc stopped after reading the attachments takes no lease of an attach that ran meanwhile for an orphan',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const guest = await netns(t);
    const br = uniq('G');
    removeLinkAtEnd(t, br);
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.251.10.0/24'])).exitCode, 0);
    // gc stops itself right after it read the attachments; the attach runs to the end in that window.
    const gc = execa(CLI, ['gc', '--json'], {
      reject: false,
      env: { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_FAULT: 'gc: list attachments:stop' },
    });
    await waitStopped(gc.pid!);
    const attach = await cli(dir, ['attach', br, guest, 'pool:p']);
    t.equal(attach.exitCode, 0, attach.stderr);
    process.kill(gc.pid!, 'SIGCONT');
    const done = await gc;
    t.equal(done.exitCode, 0, done.stderr);
    t.same(JSON.parse(done.stdout), [], 'gc found nothing to undo');
    const leases = JSON.parse((await cli(dir, ['lease', 'ls', '--json'])).stdout);
    t.equal(leases.length, 1, 'the lease is still held');
    t.equal((await cli(dir, ['detach', guest])).exitCode, 0);
  },
);

t.test('detach leaves an attach under way in another process alone', { skip }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  const br = uniq('D');
  removeLinkAtEnd(t, br);
  const links = await hostLinks();
  // The attach stops right after it recorded its intent; a detach of the same guest runs meanwhile.
  const attach = execa(CLI, ['attach', br, guest, '10.251.11.2/24'], {
    reject: false,
    env: { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_FAULT: 'record intent:stop' },
  });
  await waitStopped(attach.pid!);
  const detach = await cli(dir, ['detach', guest]);
  t.equal(detach.exitCode, 1);
  t.match(
    detach.stderr,
    /^pipewright: another pipewright \(pid \d+\) is still attaching \S+ eth0; retry when it is done$/,
  );
  process.kill(attach.pid!, 'SIGCONT');
  const done = await attach;
  t.equal(done.exitCode, 0, done.stderr);
  t.match(done.stdout, /eth0 attached to/);
  t.equal(JSON.parse((await cli(dir, ['ls', '--json'])).stdout)[0].status, 'ok', 'the attach is whole');
  t.equal((await cli(dir, ['detach', guest])).exitCode, 0, 'and detach works once it is done');
  t.same(await hostLinks(), links, 'no link left: the bridge went with its last guest');
});

const SOCKETS = fileURLToPath(new URL('../../dist/net/rtnetlink/sockets.js', import.meta.url));

t.test('a process that cannot return to the host namespace stops at once', { skip }, async (t) => {
  const guest = await netns(t);
  // Inside the guest, close the fd that leads back to the host's namespace: the way back fails for real (EBADF).
  const script = `
    import { readdirSync, readlinkSync, closeSync } from 'node:fs';
    import { inNetns } from ${JSON.stringify(SOCKETS)};
    const host = readlinkSync('/proc/self/ns/net');
    inNetns('/run/netns/${guest}', () => {
      for (const fd of readdirSync('/proc/self/fd')) {
        try { if (Number(fd) > 2 && readlinkSync('/proc/self/fd/' + fd) === host) closeSync(Number(fd)); } catch {}
      }
    });
    console.log('still running in ' + readlinkSync('/proc/self/ns/net'));
  `;
  const r = await execa('node', ['--input-type=module', '-e', script], { reject: false });
  t.equal(r.exitCode, 70, 'exit code 70');
  t.equal(r.stdout, '', 'nothing ran after the failed return');
  t.match(r.stderr, /^pipewright: cannot return to the host's network namespace .*stopping at once$/);
});

t.test(
  'deleting a host link that is gone, or going with its guest namespace, is done, not an error',
  { skip },
  async (t) => {
    await t.resolves(deleteHostLink(uniq('gone')), 'a link that never was (or went already)');
    for (let round = 0; round < 10; round++) {
      const [ns, link] = [uniq('z'), uniq('v')];
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      // The namespace goes (as a container's with its last process) while the host end is deleted.
      const going = execa('ip', ['netns', 'del', ns], { reject: false });
      await t.resolves(deleteHostLink(link), `round ${round}`);
      await going;
      t.notOk(existsSync(`/sys/class/net/${link}`), 'and it is gone');
    }
  },
);
