/**
 * The daemon's warm CLI workers: Node processes started ahead from the CLI's snapshot, each
 * waiting on the CLI socket for one command line from dist/bin/pipewright (src/cli/warm-worker.ts),
 * so a command starts without Node's start-up. A worker that takes a command is replaced at once
 * (while it runs); one that ends without taking any counts as a failure, and after a few in a row
 * the daemon stops starting them and removes the socket (the CLI then starts Node itself, as
 * without a daemon, at once instead of after its wait for an answer).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { PipewrightError } from '../util/errors.js';
import { shipped } from '../util/paths.js';
import { SNAPSHOT_FLAGS } from '../util/snapshot-flags.js';
import { syscalls } from '../util/syscalls.js';

const FAILURES_BEFORE_GIVING_UP = 3;

export type WorkerReport = { declined: string } | { stoppedStarting: string };

export interface CliWorkers {
  /** Ends the idle workers and removes the socket; commands under way finish. */
  stop(): void;
}

/**
 * How a worker starts: Node from the snapshot when one was built on a CPU like this one (as
 * dist/bin/pipewright judges), else the bundle.
 */
function nodeArgs(): string[] {
  const bundle = shipped('dist/bundle/pipewright.mjs');
  const blob = shipped('dist/pipewright.blob');
  const builtOn = existsSync(`${blob}.cpu`) ? readFileSync(`${blob}.cpu`, 'utf8').trim() : null;
  return existsSync(blob) && builtOn === syscalls().cpuKey()
    ? [...SNAPSHOT_FLAGS, '--snapshot-blob', blob, bundle]
    : [bundle];
}

/** The CLI socket, listening; a dead daemon's left there is replaced, a live one's or another file never. */
function listen(socket: string): number {
  mkdirSync(dirname(socket), { recursive: true, mode: 0o755 });
  try {
    return syscalls().unixListen(socket);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTSOCK')
      throw new PipewrightError(`${socket} exists and is not a socket; remove it or give --cli-socket another path`);
    if (code === 'EADDRINUSE')
      throw new PipewrightError(`another daemon's warm workers answer on ${socket}; stop that daemon first`);
    throw err;
  }
}

/** `stateDir`: the daemon's store, which each worker opens ahead (most commands use the same). */
export function startCliWorkers(
  socket: string,
  count: number,
  stateDir: string,
  report: (r: WorkerReport) => void,
): CliWorkers {
  const listenFd = listen(socket);
  const made = lstatSync(socket);
  const args = nodeArgs();
  const idle = new Set<ChildProcess>();
  let stopping = false;
  let failures = 0;

  // Idle workers killed, the socket closed, and its file removed unless another daemon's is there now.
  const close = () => {
    if (stopping) return;
    stopping = true;
    for (const worker of idle) worker.kill('SIGKILL');
    try {
      const now = lstatSync(socket);
      if (now.ino === made.ino && now.dev === made.dev) unlinkSync(socket);
    } catch {
      // already gone
    }
    closeSync(listenFd);
  };

  const start = () => {
    const worker = spawn(process.execPath, args, {
      // fd 3 is the listening socket; fd 1 tells the daemon what became of each call.
      stdio: ['ignore', 'pipe', 'inherit', listenFd],
      // Its own session: a Ctrl-C meant for the daemon's terminal does not reach a caller's command.
      detached: true,
      env: {
        ...process.env,
        PIPEWRIGHT_WARM_FD: '3',
        PIPEWRIGHT_WARM_PARENT: String(process.pid),
        PIPEWRIGHT_WARM_STATE_DIR: stateDir,
      },
    });
    idle.add(worker);
    worker.stdout!.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n')) {
        if (line.startsWith('declined ')) report({ declined: line.slice('declined '.length) });
        if (line !== 'taken' || !idle.delete(worker)) continue;
        failures = 0;
        if (!stopping) start();
      }
    });
    worker.on('exit', (code, signal) => {
      if (!idle.delete(worker) || stopping) return;
      if (++failures < FAILURES_BEFORE_GIVING_UP) return start();
      // No socket left to wait on: commands start Node themselves at once.
      close();
      report({
        stoppedStarting: `${failures} workers in a row ended before taking a command (last: ${signal ?? `exit ${code}`})`,
      });
    });
  };
  for (let i = 0; i < count; i++) start();

  return { stop: close };
}
