/**
 * A caller of a daemon socket that is gone by the time it is judged, its pid now another
 * process's (audit #9). Kernels before 6.5 have no SO_PEERPIDFD: the worker or daemon takes a
 * pidfd of SO_PEERCRED's pid after the accept, and must not judge whoever has that pid now. This
 * kernel has SO_PEERPIDFD, so the test builds the addon with PIPEWRIGHT_TEST_NO_PEERPIDFD (the
 * older kernels' path) and makes the pid be reused (ns_last_pid).
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../../src/util/addon.js';
import { isRoot, ROOT_REASON } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const NATIVE = fileURLToPath(new URL('../../native/syscalls.c', import.meta.url));

interface PeerOf {
  peerOf(fd: number): { pid: number; uid: number; pidfd: number };
}

/** syscalls.node built as for a kernel without SO_PEERPIDFD. */
async function olderKernelAddon(dir: string): Promise<PeerOf> {
  let include = resolve(process.execPath, '../../include/node');
  if (!existsSync(join(include, 'node_api.h')))
    include = join((await execa('npm', ['config', 'get', 'nodedir'])).stdout, 'include/node');
  const out = join(dir, 'syscalls-older-kernel.node');
  await execa('cc', [
    '-O2',
    '-shared',
    '-fPIC',
    '-DPIPEWRIGHT_TEST_NO_PEERPIDFD',
    `-I${include}`,
    `-I${dirname(NATIVE)}`,
    '-o',
    out,
    NATIVE,
    // The addon's other sources, as scripts/build-native.sh builds it (kernel change events, ARP, tools).
    join(dirname(NATIVE), 'nl-events.c'),
    join(dirname(NATIVE), 'announce.c'),
    join(dirname(NATIVE), 'spawn-tool.c'),
  ]);
  return loadAddon<PeerOf>(out);
}

const fdOf = (socket: Socket) => (socket as unknown as { _handle: { fd: number } })._handle.fd;

/** The next connection to `path` as the addon judges it: its peer, or the error. */
function judgeNext(
  server: ReturnType<typeof createServer>,
  addon: PeerOf,
): Promise<{ pid: number; pidfd: number } | Error> {
  return new Promise((done) =>
    server.once('connection', (socket: Socket) => {
      try {
        done(addon.peerOf(fdOf(socket)));
      } catch (err) {
        done(err as Error);
      } finally {
        socket.destroy();
      }
    }),
  );
}

/** A process started with `pid` (given free by the kernel's next-pid counter), or undefined. */
function takePid(pid: number, t: Test): ChildProcess | undefined {
  for (let i = 0; i < 200; i++) {
    writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.teardown(() => void child.kill('SIGKILL'));
    if (child.pid === pid) return child;
    child.kill('SIGKILL');
  }
  return undefined;
}

t.test('before Linux 6.5: a caller gone, its pid reused, is not judged in its place (#9)', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-launcher-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const addon = await olderKernelAddon(dir);
  const path = join(dir, 'd.sock');
  const server = createServer();
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(() => void server.close());
  const connect = (then: string) => ['-e', `require('net').connect(${JSON.stringify(path)}, () => ${then})`];

  // A caller still there: judged, by a pidfd of its own.
  const live = spawn(process.execPath, connect('setTimeout(() => {}, 30000)'), { stdio: 'ignore' });
  t.teardown(() => void live.kill('SIGKILL'));
  const judged = await judgeNext(server, addon);
  t.notOk(judged instanceof Error, `a live caller is read (${judged instanceof Error ? judged.message : 'ok'})`);
  if (!(judged instanceof Error)) t.equal(judged.pid, live.pid, 'as itself');

  // A caller that connected and went; before this process accepts, its pid goes to another.
  const next = judgeNext(server, addon);
  const gone = spawnSync(process.execPath, connect('process.exit(0)'));
  t.equal(gone.status, 0, 'the caller connected and went');
  const impostor = takePid(gone.pid!, t);
  t.ok(impostor, `another process has its pid (${gone.pid})`);
  const verdict = await next; // accepted only now: this process's event loop was busy until here
  t.ok(verdict instanceof Error, 'the process now at that pid is not taken for the caller');
  t.match(String(verdict), /No such process/);
});
