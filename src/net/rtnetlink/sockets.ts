/**
 * rtnetlink sockets: one for the host's namespace (opened once per process), and short-lived
 * ones inside a guest's namespace. A socket belongs to the namespace of the thread that created
 * it, so for a guest the main thread enters the guest's namespace (the syscalls.node addon), creates
 * the socket, and comes back before anything else runs. The addon sends and receives on libuv's
 * thread pool; requests on one socket go one at a time, in order.
 */
import { randomInt } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { syscalls } from '../../util/syscalls.js';
import { answerOf, encodeRequest, type NlMessage } from './message.js';

/**
 * Where requests wait for the kernel's answers: on libuv's thread pool (the default: a process
 * running many operations at once, as the daemon, never blocks its event loop on a slow kernel
 * step), or on the calling thread, in a process that runs one command and has nothing else to do
 * meanwhile (no thread pool to start, no two thread hops per request: 0.2-1 ms each, measured).
 */
let onCallingThread = false;

/** Requests of this process wait on the calling thread from now on (see onCallingThread), or again on the pool. */
export function waitOnCallingThread(on = true): void {
  onCallingThread = on;
}

export class RtSocket {
  /** Starts anywhere: a guess at the next one is no help (the addon reads the kernel's datagrams alone anyway). */
  private seq = randomInt(2 ** 32);
  private last: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly fd: number) {}

  /** Sends one request and resolves with the messages answering it (none for a change, many for a dump). */
  request(type: number, flags: number, body: Buffer, what: string): Promise<NlMessage[]> {
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const message = encodeRequest(type, flags, seq, body);
    const run = async () => {
      if (this.closed) throw new Error(`${what}: the netlink socket is closed`);
      const answer = onCallingThread
        ? syscalls().nlRequestSync(this.fd, message)
        : await syscalls().nlRequest(this.fd, message);
      return answerOf(answer, seq, what);
    };
    const answer = this.last.then(run, run);
    this.last = answer.catch(() => undefined);
    return answer;
  }

  /** Closes the socket once the requests already sent have their answers. */
  async close(): Promise<void> {
    await this.last;
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }
}

/** What a request needs of a socket (the requests in rtnl.ts take no more). */
export type Requester = Pick<RtSocket, 'request'>;

function openRtSocket(): RtSocket {
  return new RtSocket(syscalls().nlOpen());
}

const CLONE_NEWNET = 0x40000000;

function setns(fd: number): void {
  syscalls().setns(fd, CLONE_NEWNET);
}

let host: RtSocket | undefined;

/** The host namespace's socket. It holds no libuv handle, so it never keeps the process alive. */
export function hostSocket(): RtSocket {
  host ??= openRtSocket();
  return host;
}

/**
 * Coming back must never fail silently: every later step (iptables, the store's files) would run
 * inside the guest. If it does fail, the process ends at once.
 */
function returnTo(self: number): void {
  try {
    setns(self);
  } catch (err) {
    process.stderr.write(
      `pipewright: cannot return to the host's network namespace (${(err as Error).message}); stopping at once\n`,
    );
    process.exit(70);
  }
}

/**
 * Runs `fn` (synchronous: nothing else may run meanwhile) with this thread inside the namespace at
 * `netnsPath`: what it opens there (a socket, a /proc/sys/net file) belongs to that namespace.
 * Both namespace fds are closed on every path. `fn` must not announce an address (the addon's
 * packet socket, made on its first use, is meant for the host's namespace: native/announce.c).
 */
export function inNetns<T>(netnsPath: string, fn: () => T): T {
  const self = openSync('/proc/thread-self/ns/net', 'r');
  try {
    const target = openSync(netnsPath, 'r');
    try {
      setns(target);
    } finally {
      closeSync(target);
    }
    try {
      return fn();
    } finally {
      returnTo(self);
    }
  } finally {
    closeSync(self);
  }
}

/** Runs fn with a socket inside the namespace at `netnsPath`, closed afterwards. */
export async function withNetnsSocket<T>(netnsPath: string, fn: (sock: RtSocket) => Promise<T>): Promise<T> {
  const sock = inNetns(netnsPath, openRtSocket);
  try {
    return await fn(sock);
  } finally {
    await sock.close();
  }
}

/** Runs fn with an open fd of a namespace file (for IFLA_NET_NS_FD), closed afterwards. */
export async function withNetnsFd<T>(netnsPath: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(netnsPath, 'r');
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}
