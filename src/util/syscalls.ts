/**
 * The native addon's system calls (native/syscalls.c: setns, flock, rtnetlink, warm workers'
 * calls; native/nl-events.c: kernel change events; native/announce.c: gratuitous ARP;
 * native/spawn-tool.c: host tools started), loaded on first use.
 */
import { loadAddon } from './addon.js';
import { shipped } from './paths.js';

/** A command line a warm worker took: the connection, the caller's pid (and a pidfd of it), the call's bytes. */
export interface TakenCall {
  conn: number;
  pid: number;
  pidfd: number;
  payload: Buffer;
}

interface Syscalls {
  setns(fd: number, nstype: number): void;
  /** flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another holder has it. */
  tryLock(fd: number): boolean;
  /**
   * A NETLINK_ROUTE socket in the calling thread's network namespace; `waitMs` (10 s when left
   * out) bounds each request on it, from its send to its last answer.
   */
  nlOpen(waitMs?: number): number;
  /** Sends one netlink request; resolves with the answer's datagrams, up to its ack, error or NLMSG_DONE. */
  nlRequest(fd: number, message: Buffer): Promise<Buffer>;
  /** nlRequest on the calling thread: returns the answer, throws its error. */
  nlRequestSync(fd: number, message: Buffer): Buffer;
  /**
   * A listening Unix socket (mode 0600) that libuv does not watch; replaces only a dead socket
   * (else ENOTSOCK, EADDRINUSE).
   */
  unixListen(path: string): number;
  /** Blocks until a caller of this uid sends a whole call on the listening socket. */
  takeCall(listenFd: number): TakenCall;
  /** The caller's go, once answered: its fds 0-2 (received); throws when it sent none (it gave up waiting). */
  takeGo(conn: number): number[];
  /** Who connected a Unix socket: SO_PEERCRED's pid and uid, and a pidfd of that process (the caller closes it). */
  peerOf(fd: number): { pid: number; uid: number; pidfd: number };
  /** Whether the process a pidfd names has ended. */
  exited(pidfd: number): boolean;
  dup2(from: number, to: number): void;
  /**
   * Starts the executable at `path` (posix_spawn: Node's memory is not copied) with PATH set to
   * `toolPath` and pipes on its stdin, stdout and stderr: [id, stdin, stdout, stderr] (the caller
   * closes them). onExit(code, signal) once it ended (code -1 when a signal ended it).
   */
  spawnTool(
    path: string,
    argv: string[],
    toolPath: string,
    onExit: (code: number, signal: number) => void,
  ): [number, number, number, number];
  /** Signals a tool spawnTool started, through its pidfd, until it is reaped (then nothing). */
  signalTool(id: number, signal: number): void;
  /** SIGKILL when the parent process dies (true), or not (false). */
  dieWithParent(on: boolean): void;
  /**
   * A netlink socket of `protocol` joined to multicast `groups`, watched on the event loop:
   * onEvent(n) after n kernel datagrams (or a lost burst) arrived. Returns the watch's id.
   */
  nlWatch(protocol: number, groups: number[], onEvent: (n: number) => void): number;
  /** Stops a watch and closes its socket. */
  nlUnwatch(id: number): void;
  /** Broadcasts on host link `ifindex` a gratuitous ARP: IPv4 address `ipv4` (4 bytes) is at `mac` (6 bytes). */
  announce(ifindex: number, mac: Buffer, ipv4: Buffer): void;
  /** This machine's CPU features as one key (native/cpu-key.h), as the build wrote it beside the snapshot. */
  cpuKey(): string;
  /** This process becomes argv[0] run with argv (execv: same pid, environment and descriptors); throws if it cannot. */
  exec(argv: string[]): never;
}

let addon: Syscalls | undefined;

export function syscalls(): Syscalls {
  addon ??= loadAddon<Syscalls>(shipped('dist/syscalls.node'));
  return addon;
}
