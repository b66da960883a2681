/**
 * One daemon, many operations. A runtime that gave up on a slow CNI ADD sends DEL for the same
 * container while the ADD still runs in the daemon, and another container asks for the first
 * one's address meanwhile. The DEL must wait for the ADD (never tear down an attach under way),
 * and no container may lose a lease it was given.
 */
import t from 'tap';
import { execa } from 'execa';
import { closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { syscalls } from '../../src/util/syscalls.js';
import { shimName } from '../../src/model/host-names.js';
import {
  CNI_PLUGIN,
  cli,
  isRoot,
  netns,
  nicPair,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  startDaemon,
  stateDir,
  uniq,
  until,
} from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);

/** One CNI plugin call handed to the daemon's socket, as a runtime makes it. */
async function call(socket: string, conf: object, command: string, containerId: string, ns: string, args = '') {
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/run/netns/${ns}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: args,
  };
  const r = await execa(CNI_PLUGIN, [], {
    input: JSON.stringify(conf),
    env: { ...env, CNI_PATH: dirname(CNI_PLUGIN), PIPEWRIGHT_CNI_SOCKET: socket },
    reject: false,
  });
  return { exitCode: r.exitCode, out: r.stdout, at: Date.now() };
}

t.test(
  "a DEL through the daemon waits for the same container's ADD under way, and takes no lease from another",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const nic = await nicPair(t, 'o');
    removeLinkAtEnd(t, shimName(nic));
    const socket = join(dir, 'cni.sock');
    await startDaemon(t, dir, ['--socket', join(dir, 'plugin.sock'), '--cni-socket', socket]);
    const [a, c] = [await netns(t), await netns(t)];
    const conf = {
      cniVersion: '1.0.0',
      name: uniq('net'),
      type: 'pipewright',
      master: nic,
      mode: 'bridge',
      subnet: '10.245.1.0/24',
      stateDir: dir,
    };
    const ip = 'IgnoreUnknown=1;IP=10.245.1.9';

    // The host's links lock held (another pipewright making a bridge, say): a's ADD stops at its
    // host shim, leased and plumbed.
    const lock = openSync(join(dir, 'links.lock'), 'a', 0o600);
    let held = syscalls().tryLock(lock);
    t.teardown(() => held && closeSync(lock));
    t.ok(held, 'the lock is held');
    const addA = call(socket, { ...conf, hostShim: '10.245.1.250/24' }, 'ADD', 'a', a, ip);
    t.ok(
      (await until(async () => (await sh('ip', ['-n', a, 'link', 'show', 'eth0'])).exitCode === 0, 10_000)) >= 0,
      "a's ADD is under way",
    );

    const delA = call(socket, conf, 'DEL', 'a', a);
    const addC = await call(socket, conf, 'ADD', 'c', c, ip);
    t.equal(addC.exitCode !== 0 ? 'refused' : 'given', 'refused', "c's ADD is refused a's address: a still holds it");
    t.match(addC.out, /10\.245\.1\.9 in pool \S+ is taken by cni:\S+\/a\/eth0/);
    t.match(
      await json(dir, ['ls']),
      [{ guest: { name: 'a' }, status: 'pending' }],
      "a's record is still there, its ADD's",
    );
    t.match(
      await json(dir, ['lease', 'ls']),
      [{ address: '10.245.1.9', owner: `cni:${conf.name}/a/eth0` }],
      "and a's lease",
    );

    closeSync(lock);
    held = false;
    const [added, deleted] = [await addA, await delA];
    t.equal(added.exitCode, 0, `a's ADD finished whole: ${added.out}`);
    t.equal(deleted.exitCode, 0, deleted.out);
    t.ok(deleted.at >= added.at, 'the DEL ended after the ADD');
    t.same(await json(dir, ['ls']), [], 'then the DEL undid it');
    t.same(await json(dir, ['lease', 'ls']), [], 'its lease with it; no other was taken');
    t.equal((await sh('ip', ['-n', a, 'link', 'show', 'eth0'])).exitCode, 1, "a's interface is gone");
  },
);
