/**
 * An operation opens a pid guest's namespace once and works through that fd (audit #13): a guest
 * whose process dies mid-attach, its pid then taken by a process in another namespace, must not
 * send the later steps (addresses, routes) into that other namespace. The pid is reused for real:
 * /proc/sys/kernel/ns_last_pid makes the next fork take it (as CRIU does); other processes forking
 * at the same moment may take it first, so a few tries are made, and the test says whether it got it.
 */
import t, { type Test } from 'tap';
import { execa, type ResultPromise } from 'execa';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import {
  CLI,
  cli,
  inNs,
  isRoot,
  must,
  netns,
  removeLinkAtEnd,
  ROOT_REASON,
  stateDir,
  uniq,
  waitStopped,
} from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;

/**
 * `argv` then `sleep 600`, killed at teardown; resolves once it sleeps in a network namespace other
 * than the test's.
 */
async function sleeper(t: Test, argv: string[]): Promise<{ proc: ResultPromise; pid: number }> {
  const proc = execa(argv[0], [...argv.slice(1), 'sleep', '600'], { reject: false });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  const pid = proc.pid!;
  for (let i = 0; i < 200; i++) {
    try {
      if (
        readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep' &&
        readlinkSync(`/proc/${pid}/ns/net`) !== readlinkSync('/proc/self/ns/net')
      )
        return { proc, pid };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${argv.join(' ')} never got a namespace of its own`);
}

/** Tries to start a sleeper in `ns` under `pid` (freed just before); whether it got that pid. */
async function reusePid(t: Test, pid: number, ns: string): Promise<boolean> {
  for (let i = 0; i < 30; i++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const { proc, pid: got } = await sleeper(t, ['nsenter', `--net=/run/netns/${ns}`]);
    if (got === pid) return true;
    proc.kill('SIGKILL');
    await proc;
  }
  return false;
}

t.test(
  "a pid guest's process dies mid-attach and its pid goes to another namespace: the attach stays in the guest's",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const br = uniq('F');
    removeLinkAtEnd(t, br);
    const guest = await sleeper(t, ['unshare', '-n']);
    // A second process keeps the guest's namespace for the test to look into.
    const keeper = await sleeper(t, ['nsenter', '-t', String(guest.pid), '-n']);
    const other = await netns(t);
    await must('ip', ['-n', other, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']);
    await must('ip', ['-n', other, 'link', 'set', 'eth0', 'up']);

    // The attach stops once the guest's eth0 is made, before its addresses and routes.
    const attach = execa(CLI, ['attach', br, `pid:${guest.pid}`, '10.232.0.2/24@10.232.0.1'], {
      reject: false,
      env: { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_FAULT: 'create veth eth0:stop' },
    });
    await waitStopped(attach.pid!);
    guest.proc.kill('SIGKILL');
    await guest.proc;
    const reused = await reusePid(t, guest.pid, other);
    t.comment(
      reused
        ? `pid ${guest.pid} now names a process in ${other}`
        : `pid ${guest.pid} could not be reused (other forks took it): it names nothing`,
    );
    process.kill(attach.pid!, 'SIGCONT');
    const done = await attach;

    t.equal(done.exitCode, 0, `the attach went on in the namespace it opened: ${done.stderr}`);
    const mine = await must('nsenter', ['-t', String(keeper.pid), '-n', 'ip', '-o', 'addr', 'show', 'eth0']);
    t.match(mine, /inet 10\.232\.0\.2\/24/, "the guest's eth0 has its address");
    t.notMatch(
      (await inNs(other, ['ip', '-o', 'addr', 'show', 'eth0'])).stdout,
      /10\.232\.0\.2/,
      "the other namespace's eth0 has no address of the guest's",
    );
    t.notMatch((await inNs(other, ['ip', 'route'])).stdout, /default/, 'and no default route');

    // The guest is gone: gc undoes its attachment, and the other namespace is still left alone.
    t.equal((await cli(dir, ['gc'])).exitCode, 0);
    t.same(JSON.parse((await cli(dir, ['ls', '--json'])).stdout), [], 'no record');
    t.equal((await inNs(other, ['ip', 'link', 'show', 'eth0'])).exitCode, 0, "the other namespace's eth0 is untouched");
  },
);
