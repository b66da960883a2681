/**
 * A warm worker: a Node process `pipewright daemon` starts ahead, from the CLI's snapshot
 * (src/daemon/cli-workers.ts), waiting for one command line from dist/bin/pipewright
 * (native/pipewright.c). It takes the caller's place: the caller's stdin, stdout and stderr on its
 * fds 0-2, its environment, working directory, umask, argv and cgroup, and the caller learns the
 * command's exit status. A caller this process is not like (another namespace, root directory,
 * capability set or seccomp state, another uid: dropped before this sees it) is declined and runs
 * the command itself: a worker never gives a caller more than it has. One command per worker, so
 * nothing of one command is left in a process that runs another.
 */
import type { Command } from 'commander';
import { closeSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { boundsOf, boundsWhileAlive, differing, type Bounds } from '../net/netns/powers.js';
import { sqliteAddon, Store } from '../db/store.js';
import { syscalls, type TakenCall } from '../util/syscalls.js';

const CALL_VERSION = 'pipewright-call-2';

declare const PIPEWRIGHT_BUILD_ID: string | undefined;
/** The build this code belongs to (scripts/bundle.mjs compiles it in; so does the launcher's build). */
export const BUILD_ID = typeof PIPEWRIGHT_BUILD_ID === 'string' ? PIPEWRIGHT_BUILD_ID : 'unbundled';

/** Commands that run until stopped: in a worker they would live on as the daemon's child. */
const NOT_HANDED_OVER = new Set(['daemon', 'watch']);

/** A caller's command line and the process state it runs in (native/pipewright.c builds it). */
export interface Call {
  /** The launcher's build: a worker of another build declines (its code may differ from the launcher's). */
  build: string;
  cwd: string;
  umask: number;
  argv: string[];
  /**
   * The caller's environment as name-value pairs, in order: not keyed into an object until the
   * caller is taken (a worker started from the snapshot hashes with a fixed seed, and a caller it
   * declines must not choose keys for its tables: src/util/snapshot-flags.ts).
   */
  env: [string, string][];
}

/** The call's NUL-separated strings: version, build, cwd, umask (octal), argc, argv..., environment... */
export function parseCall(payload: Buffer): Call | undefined {
  const parts = payload.toString('utf8').split('\0');
  parts.pop(); // after the last NUL
  const [version, build, cwd, umask, argc, ...rest] = parts;
  const n = Number(argc);
  if (
    version !== CALL_VERSION ||
    !build ||
    !cwd?.startsWith('/') ||
    !/^[0-7]{1,4}$/.test(umask ?? '') ||
    !Number.isInteger(n) ||
    n < 1 ||
    n > rest.length
  ) {
    return undefined;
  }
  const env = rest.slice(n).flatMap((entry): [string, string][] => {
    const eq = entry.indexOf('=');
    return eq > 0 ? [[entry.slice(0, eq), entry.slice(eq + 1)]] : [];
  });
  return { build, cwd, umask: parseInt(umask, 8), argv: rest.slice(0, n), env };
}

/** The command's name in a command line: its first word that is not a global option or its value. */
export function commandWord(program: Command, args: string[]): string | undefined {
  const withValue = new Set(program.options.filter((o) => o.required || o.optional).map((o) => o.long));
  for (let i = 0; i < args.length; i++) {
    if (withValue.has(args[i])) i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

/** This worker as callers are compared with, read once before any call. */
interface Self {
  bounds: Bounds;
  /** /proc/self/cgroup: where the worker is, to tell whether a caller's cgroup is another. */
  cgroup: string;
}

/** What a caller is, read while it is alive (or undefined: it ended before the pidfd was polled). */
export interface Caller {
  bounds: Bounds;
  /** /proc/<pid>/cgroup, read before the pidfd is polled, as the bounds are: the caller's own. */
  cgroup: string;
}

/** The caller's bounds and cgroup, both read before its pidfd shows it still runs. */
export function readCaller(pid: number, pidfd: number): Caller | undefined {
  const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  const bounds = boundsWhileAlive(pid, pidfd);
  return bounds && { bounds, cgroup };
}

/**
 * Joins the caller's cgroup, so what the command leaves running (a DHCP client) is accounted and
 * stopped with the caller's service, not the daemon's. Only on a cgroup v2 host; on another, a
 * caller in another cgroup is declined. Returns why it could not.
 */
function joinCgroup(theirs: string, mine: string): string | undefined {
  if (theirs === mine) return undefined;
  const unified = /^0::(\/.*)\n$/.exec(theirs);
  if (!unified) return 'another cgroup (not a cgroup v2 host)';
  try {
    writeFileSync(`/sys/fs/cgroup${unified[1]}/cgroup.procs`, String(process.pid));
    return undefined;
  } catch (err) {
    return `another cgroup that this worker cannot join (${(err as Error).message})`;
  }
}

/** Why the call is declined, or undefined once this process has taken the caller's place. */
function adopt(program: Command, taken: TakenCall, call: Call | undefined, self: Self): string | undefined {
  if (!call) return 'a malformed call';
  const word = commandWord(program, call.argv.slice(1));
  if (word && NOT_HANDED_OVER.has(word)) return `"${word}" runs in the caller's own process`;
  if (call.build !== BUILD_ID)
    return `a launcher of another build (${call.build}; this worker: ${BUILD_ID}): restart the daemon after an upgrade`;
  const caller = readCaller(taken.pid, taken.pidfd);
  if (!caller) return 'a caller that went before it was read';
  const reasons = differing(self.bounds, caller.bounds);
  if (reasons.length) return `another ${reasons.join(', ')}`;
  try {
    process.chdir(call.cwd);
  } catch {
    return 'a working directory this worker cannot enter';
  }
  return joinCgroup(caller.cgroup, self.cgroup);
}

/** Tells the daemon (on fd 1, still its pipe) what became of a call. */
const tellDaemon = (line: string) => writeSync(1, `${line}\n`);

/**
 * Waits (blocking: nothing else runs here) for a call this worker can run, and takes the caller's
 * place: afterwards process.argv, process.env and fds 0-2 are the caller's, and the caller gets
 * the exit status when this process exits. Killed with the daemon while it waits; once it has a
 * call, it is the caller's command, and goes when the caller goes (kill -9 of the caller included).
 */
export function becomeCaller(program: Command): void {
  const listenFd = Number(process.env.PIPEWRIGHT_WARM_FD);
  const sys = syscalls();
  sys.dieWithParent(true);
  if (process.ppid !== Number(process.env.PIPEWRIGHT_WARM_PARENT)) process.exit(0); // the daemon went first
  // Work done before a caller waits: the SQLite addon's dlopen, the daemon's store, this process's bounds and cgroup.
  sqliteAddon();
  const stateDir = process.env.PIPEWRIGHT_WARM_STATE_DIR;
  if (stateDir) Store.openAhead(stateDir);
  const self: Self = { bounds: boundsOf('self'), cgroup: readFileSync('/proc/self/cgroup', 'utf8') };
  for (;;) {
    const taken = sys.takeCall(listenFd);
    const call = parseCall(taken.payload);
    let declined: string | undefined;
    try {
      declined = adopt(program, taken, call, self);
    } catch (err) {
      declined = `a caller that could not be read (${(err as Error).message})`; // it went meanwhile
    }
    closeSync(taken.pidfd);
    if (!declined && call) return serve(taken, call, listenFd);
    tellDaemon(`declined ${declined}`);
    closeSync(taken.conn);
  }
}

/**
 * Answers 'y' and this process's pid, and waits for the caller's go, which brings its fds 0-2:
 * none when the caller gave up waiting (its answer came too late) and runs the command itself.
 */
function goAhead(conn: number): number[] | undefined {
  const reply = Buffer.alloc(5, 'y');
  reply.writeInt32LE(process.pid, 1);
  try {
    writeSync(conn, reply);
    return syscalls().takeGo(conn);
  } catch {
    return undefined;
  }
}

function serve(taken: TakenCall, call: Call, listenFd: number): void {
  syscalls().dieWithParent(false);
  tellDaemon('taken');
  closeSync(listenFd);
  const fds = goAhead(taken.conn);
  if (!fds) process.exit(0); // nothing ran: the caller runs the command
  fds.forEach((fd, i) => {
    syscalls().dup2(fd, i);
    closeSync(fd);
  });
  for (const key of Object.keys(process.env)) delete process.env[key];
  for (const [name, value] of call.env) process.env[name] = value;
  process.umask(call.umask);
  process.argv = [process.argv[0], process.argv[1], ...call.argv.slice(1)];
  process.on('exit', (code) => {
    const status = Buffer.alloc(4);
    status.writeInt32LE(code);
    try {
      writeSync(taken.conn, status);
    } catch {
      // the caller is gone: nobody to tell
    }
  });
  // The caller gone (killed, even by SIGKILL): so is its command, as if it had run in the caller.
  const caller = new Socket({ fd: taken.conn, readable: true, writable: false });
  const die = () => process.kill(process.pid, 'SIGKILL');
  caller.on('end', die).on('error', die).resume().unref();
}
