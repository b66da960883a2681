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
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { syscalls } from '../../src/util/syscalls.js';
import { CLI, isRoot, netns, processEnded, ROOT_REASON, startDaemon, stateDir, until } from '../helpers/host.js';
import { SNAPSHOT_FLAGS } from '../../src/util/snapshot-flags.js';

const skip = !isRoot && ROOT_REASON;
// Any Node started under it refuses to run: only a worker started before can run the command.
const NO_NODE = { NODE_OPTIONS: '--no-such-node-option' };

async function warmDaemon(t: Test) {
  const dir = stateDir(t);
  const socket = join(dir, 'cli.sock');
  const daemon = await startDaemon(t, dir, [
    '--socket',
    join(dir, 'plugin.sock'),
    '--cni-socket',
    '',
    '--cli-socket',
    socket,
  ]);
  const env = { PIPEWRIGHT_STATE_DIR: dir, PIPEWRIGHT_CLI_SOCKET: socket };
  const run = (args: string[], extra: Record<string, string> = {}, input?: string) =>
    execa(CLI, args, { env: { ...env, ...extra }, input, reject: false });
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
  return readdirSync(`/proc/${daemon}/task`).flatMap((tid) =>
    readProc(`/proc/${daemon}/task/${tid}/children`).split(' ').filter(Boolean).map(Number),
  );
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

t.test(
  "the caller's terminal is the command's terminal",
  { skip: skip || (!existsSync('/usr/bin/script') && 'needs script(1)') },
  async (t) => {
    const { env } = await warmDaemon(t);
    // volume prune asks only on a terminal; script(1) gives the command one, and answers "n".
    const r = await execa('script', ['-qec', `${CLI} volume prune`, '/dev/null'], {
      env: { ...env, ...NO_NODE },
      input: 'n\n',
      reject: false,
    });
    t.match(r.stdout, /nothing removed/);
    t.notMatch(r.stdout, /without a terminal/);
  },
);

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
  const inNs = await execa('ip', ['netns', 'exec', ns, CLI, 'pool', 'ls'], {
    env: { ...env, ...NO_NODE },
    reject: false,
  });
  t.match(inNs.stderr, /no-such-node-option/, 'another netns: not run by a worker');
  t.equal(
    (await execa('ip', ['netns', 'exec', ns, CLI, 'pool', 'ls'], { env, reject: false })).exitCode,
    0,
    'and runs by itself',
  );
  // Fewer capabilities than the worker.
  const fewer = await execa('setpriv', ['--bounding-set', '-net_admin', CLI, 'pool', 'ls'], {
    env: { ...env, ...NO_NODE },
    reject: false,
  });
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

t.test(
  'a caller that sends no whole call within 2 s, or one too long, is dropped; the worker waits on',
  { skip },
  async (t) => {
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
    const [silent, tooLong] = await Promise.all([
      dropped(() => {}),
      dropped((c) => c.write(Buffer.from([0, 0, 0x20, 0]))),
    ]);
    t.ok(silent >= 1900 && silent < 4000, `a silent caller is dropped after the 2 s limit (${silent} ms)`);
    t.ok(tooLong < 1900, `a call longer than 1 MiB is dropped at once, not at the limit (${tooLong} ms)`);
    t.equal((await run(['--version'], NO_NODE)).stdout, '0.1.0', 'the same workers then serve a command');
    t.same(declines(daemon.lines()), [], 'dropped before a worker reads a call: nothing to decline');
  },
);

t.test(
  'a daemon started from the snapshot becomes Node running the bundle: same pid, a hash seed of its own',
  { skip },
  async (t) => {
    const { daemon } = await warmDaemon(t);
    const pid = daemon.proc.pid!;
    const argvOf = (p: number) => readProc(`/proc/${p}/cmdline`).split('\0').filter(Boolean);
    const fromSnapshot = (argv: string[]) =>
      argv.includes('--snapshot-blob') && SNAPSHOT_FLAGS.every((f) => argv.includes(f));
    const argv = argvOf(pid);
    t.notOk(
      argv.includes('--snapshot-blob'),
      `the daemon (pid ${pid}, as started) runs no snapshot: ${argv.join(' ')}`,
    );
    t.notOk(
      SNAPSHOT_FLAGS.some((f) => argv.includes(f)),
      'nor its flags (V8 draws the seed and rehashes)',
    );
    t.match(argv[1], /\/dist\/bundle\/pipewright\.mjs$/, 'it runs the bundle');
    t.same(argv.slice(2, 5), ['daemon', '--log-format', 'json'], 'with its arguments');
    const idle = workers(pid);
    t.equal(idle.length, 2);
    t.ok(idle.map(argvOf).every(fromSnapshot), 'its warm workers start from the snapshot, with its flags');
  },
);

t.test('idle workers go with the daemon; commands then start Node themselves', { skip }, async (t) => {
  const { env, daemon } = await warmDaemon(t);
  const idle = workers(daemon.proc.pid!);
  t.equal(idle.length, 2);
  daemon.proc.kill('SIGKILL');
  await daemon.proc;
  t.not(await until(() => idle.every(processEnded), 5000), -1, 'no worker outlives a daemon killed -9');
  const r = await execa(CLI, ['--version'], { env, reject: false });
  t.equal(r.stdout, '0.1.0', 'a stale socket: the command runs by itself');
  t.equal(
    (await execa(CLI, ['--version'], { env: { ...env, ...NO_NODE }, reject: false })).exitCode,
    9,
    'in Node (NODE_OPTIONS applies)',
  );
});

t.test(
  'a caller trickling its call is dropped 2 s after the accept, not 2 s after each byte (#5)',
  { skip },
  async (t) => {
    const { socket, daemon, run } = await warmDaemon(t);
    const t0 = Date.now();
    const held = await new Promise<number>((resolve, reject) => {
      const c = createConnection(socket, () => c.write(Buffer.from([100, 0, 0, 0])));
      const trickle = setInterval(() => c.writable && c.write('x'), 300); // 1 byte per 300 ms: 30 s for the call
      c.on('error', (err: NodeJS.ErrnoException) => err.code !== 'ECONNRESET' && err.code !== 'EPIPE' && reject(err))
        .on('close', () => {
          clearInterval(trickle);
          resolve(Date.now() - t0);
        })
        .resume();
    });
    t.ok(held >= 1900 && held < 4000, `dropped at the call's deadline (${held} ms)`);
    t.equal((await run(['--version'], NO_NODE)).stdout, '0.1.0', 'the workers then serve');
    t.same(declines(daemon.lines()), [], 'nothing declined');
  },
);

/** A process's state letter (R, S, T...) and CPU time (utime + stime, in ticks), from /proc/<pid>/stat. */
function stat(pid: number): { state: string; cpu: number } {
  const fields = readProc(`/proc/${pid}/stat`)
    .replace(/^.*\) /s, '')
    .split(' ');
  return { state: fields[0] ?? '', cpu: Number(fields[11]) + Number(fields[12]) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test(
  'Ctrl-Z stops the caller and the worker; fg goes on with both, and the exit status arrives (#4)',
  { skip },
  async (t) => {
    const { env, daemon } = await warmDaemon(t);
    // In a process group of its own under this one, as a job-control shell puts a job (a group
    // whose parent is in another session is orphaned, and the kernel drops SIGTSTP there).
    const proc = execa('perl', ['-e', 'setpgrp(0, 0); exec @ARGV or die', CLI], {
      env: { ...env, ...NO_NODE, CNI_COMMAND: 'VERSION' },
      reject: false,
    });
    const caller = proc.pid!;
    t.teardown(() => void proc.kill('SIGKILL'));
    await until(() => stat(caller).state !== '' && readProc(`/proc/${caller}/cmdline`).startsWith(CLI), 5000);
    const stdin = readlinkSync(`/proc/${caller}/fd/0`);
    let busy: number | undefined;
    await until(() => (busy = workers(daemon.proc.pid!).find((w) => fdIs(w, stdin))) !== undefined, 5000);
    t.ok(busy, 'a worker runs the command (the CNI plugin waiting for its stdin)');
    process.kill(caller, 'SIGTSTP');
    const stopped = await until(() => stat(caller).state === 'T', 1000);
    t.not(stopped, -1, `the caller stops within 1 s (${stopped} ms; state ${stat(caller).state})`);
    // The worker's SIGSTOP is sent before the caller stops, but it takes effect when the worker is
    // next scheduled: on a loaded host that can come after the caller's own stop.
    const workerStopped = await until(() => stat(busy!).state === 'T', 1000);
    t.not(workerStopped, -1, `and so does the worker, within 1 s (${workerStopped} ms; state ${stat(busy!).state})`);
    const cpu = stat(caller).cpu;
    await sleep(500);
    t.equal(stat(caller).cpu, cpu, 'the stopped caller uses no CPU');
    process.kill(-caller, 'SIGCONT'); // what `fg` sends: to the job's process group, not the worker's
    t.not(await until(() => stat(busy!).state !== 'T' && stat(caller).state !== 'T', 1000), -1, 'both run again');
    proc.stdin!.end(JSON.stringify({ cniVersion: '1.0.0' }));
    const r = await proc;
    t.equal(r.exitCode, 0, r.stderr);
    t.ok(JSON.parse(r.stdout).supportedVersions.includes('1.0.0'), "the command's output and exit status arrive");
  },
);

t.test('a stopped caller killed -9: its worker does not stay stopped (#4)', { skip }, async (t) => {
  const { env, daemon } = await warmDaemon(t);
  const proc = execa('perl', ['-e', 'setpgrp(0, 0); exec @ARGV or die', CLI], {
    env: { ...env, ...NO_NODE, CNI_COMMAND: 'VERSION' },
    reject: false,
  });
  const caller = proc.pid!;
  await until(() => readProc(`/proc/${caller}/cmdline`).startsWith(CLI), 5000);
  const stdin = readlinkSync(`/proc/${caller}/fd/0`);
  let busy: number | undefined;
  await until(() => (busy = workers(daemon.proc.pid!).find((w) => fdIs(w, stdin))) !== undefined, 5000);
  t.ok(busy, 'a worker runs the command');
  process.kill(caller, 'SIGTSTP');
  t.not(await until(() => stat(caller).state === 'T' && stat(busy!).state === 'T', 1000), -1, 'both stop');
  process.kill(caller, 'SIGKILL');
  await proc;
  t.not(await until(() => processEnded(busy!), 5000), -1, 'the worker runs again and ends with its caller');
});

t.test('a socket that never answers: the caller runs the command itself within its 1 s wait (#5)', async (t) => {
  const dir = stateDirOnly(t);
  const socket = join(dir, 'listen-only.sock');
  const fd = syscalls().unixListen(socket); // listens, never accepts
  t.teardown(() => closeSync(fd));
  const t0 = Date.now();
  const r = await execa(CLI, ['--version'], { env: { PIPEWRIGHT_CLI_SOCKET: socket }, reject: false, timeout: 10_000 });
  const ms = Date.now() - t0;
  t.equal(r.stdout, '0.1.0', r.stderr || (r.timedOut ? 'still waiting after 10 s' : ''));
  t.ok(ms >= 900 && ms < 2500, `ran by itself after its wait (${ms} ms)`);
});

/** A private directory (no store): removed at the end. */
function stateDirOnly(t: Test): string {
  const dir = join('/tmp', `pipewright-launcher-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir, { mode: 0o700 });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test(
  'a daemon whose workers fail at start removes its socket; commands then run at once (#5)',
  { skip },
  async (t) => {
    const { dir, socket, daemon, env } = await warmDaemon(t);
    // A state dir its group may write: each new worker's Store.openAhead refuses it, and the worker ends.
    chmodSync(dir, 0o775);
    t.teardown(() => chmodSync(dir, 0o700));
    for (const w of workers(daemon.proc.pid!)) process.kill(w, 'SIGKILL');
    const gaveUp = await until(() => daemon.lines().some((l) => JSON.parse(l).stoppedStarting), 10_000);
    t.not(gaveUp, -1, 'the daemon stops starting workers');
    t.notOk(existsSync(socket), 'and removes the socket');
    const t0 = Date.now();
    const r = await execa('timeout', ['10', CLI, '--version'], { env, reject: false });
    t.equal(r.stdout, '0.1.0', r.stderr);
    t.ok(Date.now() - t0 < 2000, `a command runs by itself at once (${Date.now() - t0} ms)`);
  },
);

t.test('a worker of another build declines; the command runs by itself (#22)', { skip }, async (t) => {
  const { env, daemon } = await warmDaemon(t);
  // The same launcher, built with another id, beside the same bundle.
  const other = join(stateDirOnly(t), 'dist');
  const real = dirname(dirname(CLI));
  mkdirSync(join(other, 'bin'), { recursive: true });
  for (const f of ['bundle', 'pipewright.blob', 'pipewright.blob.cpu'])
    if (existsSync(join(real, f))) symlinkSync(join(real, f), join(other, f));
  const native = join(real, '..', 'native');
  await execa('cc', [
    '-O2',
    '-DBUILD_ID="0000000000000000"',
    `-DSNAPSHOT_FLAGS=${JSON.stringify(SNAPSHOT_FLAGS).slice(1, -1)}`,
    '-o',
    join(other, 'bin/pipewright'),
    join(native, 'pipewright.c'),
  ]);
  const declined = await execa(join(other, 'bin/pipewright'), ['--version'], {
    env: { ...env, ...NO_NODE },
    reject: false,
  });
  t.match(declined.stderr, /no-such-node-option/, 'not run by a worker');
  t.match(
    declines(daemon.lines()).at(-1)?.declined,
    /a launcher of another build \(0000000000000000; this worker: [0-9a-f]{16}\)/,
    'the daemon says why',
  );
  const ran = await execa(join(other, 'bin/pipewright'), ['--version'], { env, reject: false });
  t.equal(ran.stdout, '0.1.0', 'and it runs by itself');
  t.equal(
    (await execa(CLI, ['--version'], { env: { ...env, ...NO_NODE }, reject: false })).stdout,
    '0.1.0',
    'a launcher of this build is served',
  );
});

t.test("daemon start deletes only dead sockets: not a file, not a live daemon's socket (#24)", { skip }, async (t) => {
  const { dir, socket, env } = await warmDaemon(t);
  const second = stateDir(t);
  const start = (args: string[]) =>
    execa(CLI, ['daemon', '--log-format', 'json', '--cni-socket', '', ...args], {
      env: { PIPEWRIGHT_STATE_DIR: second },
      reject: false,
      timeout: 20_000,
    });
  const file = join(second, 'not-a-socket');
  writeFileSync(file, 'keep me\n');
  for (const flag of ['--socket', '--cli-socket']) {
    const others =
      flag === '--socket' ? ['--cli-socket', join(second, 'cli.sock')] : ['--socket', join(second, 'plugin.sock')];
    const r = await start([flag, file, ...others]);
    t.not(r.exitCode, 0, `${flag} naming a file: the daemon does not start`);
    t.match(r.stderr, /not-a-socket exists and is not a socket/);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.equal(readFileSync(file, 'utf8'), 'keep me\n', 'and the file is left alone');
  }
  const before = lstatSync(socket).ino;
  const stealing = await start(['--socket', join(second, 'plugin.sock'), '--cli-socket', socket]);
  t.not(stealing.exitCode, 0, "a second daemon on the first's CLI socket does not start");
  t.match(stealing.stderr, /another daemon's warm workers answer on/);
  t.equal(lstatSync(socket).ino, before, "the first daemon's socket is still there");
  t.equal(
    (await execa(CLI, ['--version'], { env: { ...env, ...NO_NODE }, reject: false })).stdout,
    '0.1.0',
    'and its workers serve',
  );
  t.ok(dir);
});
