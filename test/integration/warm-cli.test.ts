/**
 * Commands run by a daemon's warm workers (native/pipewright.c hands them over,
 * src/cli/warm-worker.ts takes the caller's place, src/daemon/cli-workers.ts keeps them): the
 * caller's argv, environment, working directory, stdin/stdout/stderr (a terminal too) and exit
 * status; signals and kill -9 of the caller reach the command; callers unlike the worker (another
 * namespace, fewer capabilities, another uid) and `daemon` run in their own process; the idle
 * workers go with the daemon. A command ran in a worker when it ran under a NODE_OPTIONS that
 * stops any Node from starting.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { CLI, isRoot, netns, processEnded, ROOT_REASON, startDaemon, stateDir, until } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
// Any Node started under it refuses to run: only a worker started before can run the command.
const NO_NODE = { NODE_OPTIONS: '--no-such-node-option' };

async function warmDaemon(t: Test) {
  const dir = stateDir(t);
  const socket = join(dir, 'cli.sock');
  const daemon = await startDaemon(t, dir, ['--socket', join(dir, 'plugin.sock'), '--cni-socket', '', '--cli-socket', socket]);
  const env = { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_CLI_SOCKET: socket };
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) => execa(CLI, args, { env: { ...env, ...extra }, input, reject: false });
  await until(() => workers(daemon.proc.pid!).length === 2, 5000);
  return { dir, socket, daemon, env, run };
}

/** A /proc file's text, or '' once its thread is gone: it may go between any two reads. */
function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The daemon's children: its warm workers, and commands they run. */
function workers(daemon: number): number[] {
  return readdirSync(`/proc/${daemon}/task`).flatMap((tid) => readProc(`/proc/${daemon}/task/${tid}/children`).split(' ').filter(Boolean).map(Number));
}

const declines = (lines: string[]) => lines.map((l) => JSON.parse(l)).filter((l) => l.declined);

t.test('a command runs in a warm worker as in its own process', { skip }, async (t) => {
  const { dir, env, run, daemon } = await warmDaemon(t);
  const before = workers(daemon.proc.pid!);
  // argv, environment (the state dir comes only from it), stdout, exit status
  const created = await run(['pool', 'create', 'warm', '10.251.7.0/24', '--json'], NO_NODE);
  t.equal(created.exitCode, 0, created.stderr);
  t.equal(JSON.parse(created.stdout).subnet, '10.251.7.0/24');
  t.ok(existsSync(join(dir, 'pipewright.db')), "the store of the caller's PIPEWRIGHT_STATE_DIR");
  t.not(workers(daemon.proc.pid!).sort().join(), before.sort().join(), 'a worker took it and another was started');
  // stderr and the exit status of an error and of a usage error
  const missing = await run(['pool', 'rm', 'nosuch'], NO_NODE);
  t.equal(missing.exitCode, 1);
  t.match(missing.stderr, /^pipewright: .*nosuch/);
  t.equal(missing.stderr.trim().split('\n').length, 1, 'one line');
  t.equal((await run(['pool', 'frobnicate'], NO_NODE)).exitCode, 2);
  // the working directory: a relative path is the caller's
  writeFileSync(join(dir, 'host.yaml'), 'pools:\n  - name: fromfile\n    subnet: 10.251.8.0/24\n');
  const applied = await execa(CLI, ['apply', '-f', 'host.yaml'], {
    cwd: dir,
    env: { ...env, ...NO_NODE },
    reject: false,
  });
  t.equal(applied.exitCode, 0, applied.stderr);
  t.match((await run(['pool', 'ls'], NO_NODE)).stdout, /fromfile/);
  // stdin: the CNI plugin's configuration
  const version = await run([], { ...NO_NODE, CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: '1.0.0' }));
  t.same(JSON.parse(version.stdout).supportedVersions.includes('1.0.0'), true);
  t.same(declines(daemon.lines()), [], 'nothing declined');
  for (const p of ['warm', 'fromfile']) await run(['pool', 'rm', p]);
});

t.test("the caller's terminal is the command's terminal", { skip: skip || (!existsSync('/usr/bin/script') && 'needs script(1)') }, async (t) => {
  const { env } = await warmDaemon(t);
  // volume prune asks only on a terminal; script(1) gives the command one, and answers "n".
  const r = await execa('script', ['-qec', `${CLI} volume prune`, '/dev/null'], { env: { ...env, ...NO_NODE }, input: 'n\n', reject: false });
  t.match(r.stdout, /nothing removed/);
  t.notMatch(r.stdout, /without a terminal/);
});

t.test('signals and kill -9 of the caller reach the command', { skip }, async (t) => {
  const { env, daemon } = await warmDaemon(t);
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    // The CNI plugin reading its configuration from a stdin left open: a command that waits.
    const proc = execa(CLI, [], { env: { ...env, ...NO_NODE, CNI_COMMAND: 'VERSION' }, reject: false });
    const stdin = readlinkSync(`/proc/${proc.pid}/fd/0`);
    let busy: number | undefined;
    await until(() => (busy = workers(daemon.proc.pid!).find((w) => fdIs(w, stdin))) !== undefined, 5000);
    t.ok(busy, `a worker runs the command (${signal})`);
    proc.kill(signal);
    const r = await proc;
    t.equal(r.signal, signal, `the caller ended by ${signal}`);
    t.not(await until(() => processEnded(busy!), 5000), -1, 'and so did the command');
  }
});

function fdIs(pid: number, target: string): boolean {
  try {
    return readlinkSync(`/proc/${pid}/fd/0`) === target;
  } catch {
    return false;
  }
}

t.test('callers unlike the worker, and daemons, run in their own process', { skip }, async (t) => {
  const { dir, socket, env, daemon, run } = await warmDaemon(t);
  t.equal(statSync(socket).mode & 0o777, 0o600, 'only root may connect');
  const ns = await netns(t);
  // Another network namespace (ip netns exec: a mount namespace of its own too): run by Node in
  // the caller, so NODE_OPTIONS stops it.
  const inNs = await execa('ip', ['netns', 'exec', ns, CLI, 'pool', 'ls'], { env: { ...env, ...NO_NODE }, reject: false });
  t.match(inNs.stderr, /no-such-node-option/, 'another netns: not run by a worker');
  t.equal((await execa('ip', ['netns', 'exec', ns, CLI, 'pool', 'ls'], { env, reject: false })).exitCode, 0, 'and runs by itself');
  // Fewer capabilities than the worker.
  const fewer = await execa('setpriv', ['--bounding-set', '-net_admin', CLI, 'pool', 'ls'], { env: { ...env, ...NO_NODE }, reject: false });
  t.match(fewer.stderr, /no-such-node-option/, 'fewer capabilities: not run by a worker');
  t.match(
    declines(daemon.lines()).map((l) => l.declined),
    [/another net namespace/, /another net namespace/, /another .*CapBnd/],
    'the daemon says why',
  );
  // Another uid: dropped before a worker reads the call (even on a socket others may open).
  chmodSync(socket, 0o666);
  const nobody = await execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', CLI, '--version'], {
    env: { ...env, ...NO_NODE },
    reject: false,
  });
  t.match(nobody.stderr, /no-such-node-option/, 'another uid: not run by a worker');
  // `daemon` would live on as the daemon's child.
  const second = await run(['daemon', '--socket', join(dir, 'second.sock')], NO_NODE);
  t.match(second.stderr, /no-such-node-option/, 'daemon: not run by a worker');
  t.equal((await run(['--version'], NO_NODE)).stdout, '0.1.0', 'the workers still serve');
});

t.test('a caller that sends no whole call within 2 s, or no descriptors, is dropped; the worker waits on', { skip }, async (t) => {
  const { socket, daemon, run } = await warmDaemon(t);
  const dropped = (send: (c: Socket) => void) =>
    new Promise<number>((resolve, reject) => {
      const t0 = Date.now();
      const c = createConnection(socket, () => send(c));
      // A reset is a drop too: the worker closed with the caller's bytes unread.
      c.on('error', (err: NodeJS.ErrnoException) => err.code !== 'ECONNRESET' && reject(err))
        .on('close', () => resolve(Date.now() - t0))
        .resume();
    });
  // Both at once: the two workers each hold one until it is dropped.
  const [silent, noFds] = await Promise.all([dropped(() => {}), dropped((c) => c.write(Buffer.from([5, 0, 0, 0, 120, 0, 0, 0, 0])))]);
  t.ok(silent >= 1900 && silent < 4000, `a silent caller is dropped after the 2 s limit (${silent} ms)`);
  t.ok(noFds < 1900, `a call without stdin, stdout, stderr is dropped at once, not at the limit (${noFds} ms)`);
  t.equal((await run(['--version'], NO_NODE)).stdout, '0.1.0', 'the same workers then serve a command');
  t.same(declines(daemon.lines()), [], 'dropped before a worker reads a call: nothing to decline');
});

t.test('idle workers go with the daemon; commands then start Node themselves', { skip }, async (t) => {
  const { env, daemon } = await warmDaemon(t);
  const idle = workers(daemon.proc.pid!);
  t.equal(idle.length, 2);
  daemon.proc.kill('SIGKILL');
  await daemon.proc;
  t.not(await until(() => idle.every(processEnded), 5000), -1, 'no worker outlives a daemon killed -9');
  const r = await execa(CLI, ['--version'], { env, reject: false });
  t.equal(r.stdout, '0.1.0', 'a stale socket: the command runs by itself');
  t.equal((await execa(CLI, ['--version'], { env: { ...env, ...NO_NODE }, reject: false })).exitCode, 9, 'in Node (NODE_OPTIONS applies)');
});
