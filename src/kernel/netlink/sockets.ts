/**
 * rtnetlink sockets: one for the host's namespace (opened once per process), and short-lived
 * ones inside a guest's namespace. A socket belongs to the namespace of the thread that created
 * it, so for a guest the main thread enters the guest's namespace (the syscalls.node addon), creates
 * the socket, and comes back before anything else runs.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RtNetlinkSocket } from 'netlink';
import type * as Netlink from 'netlink';
import { syscalls } from '../../util/syscalls.js';

let pkg: typeof Netlink | undefined;

/**
 * A new rtnetlink socket. The netlink package is loaded on first use: its generated attribute
 * tables take ~20 ms to load, which a command that never talks to the kernel (ls, pool ls) should
 * not pay. require(), not import: an ES import of a CommonJS package makes Node scan its source first.
 */
function createRtNetlink(): RtNetlinkSocket {
  pkg ??= createRequire(import.meta.url)('netlink') as typeof Netlink;
  return pkg.createRtNetlink();
}
const CLONE_NEWNET = 0x40000000;

function setns(fd: number): void {
  syscalls().setns(fd, CLONE_NEWNET);
}

let host: RtNetlinkSocket | undefined;

/** The host namespace's socket; unref'd so it never keeps the process alive. */
export function hostSocket(): RtNetlinkSocket {
  if (!host) {
    host = createRtNetlink();
    host.socket.unref();
  }
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
    process.stderr.write(`pipewright: cannot return to the host's network namespace (${(err as Error).message}); stopping at once\n`);
    process.exit(70);
  }
}

/**
 * Runs `fn` (synchronous: nothing else may run meanwhile) with this thread inside the namespace at
 * `netnsPath`: what it opens there (a socket, a /proc/sys/net file) belongs to that namespace.
 * Both namespace fds are closed on every path.
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
export async function withNetnsSocket<T>(netnsPath: string, fn: (sock: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const sock = inNetns(netnsPath, () => createRtNetlink());
  try {
    return await fn(sock);
  } finally {
    sock.socket.close();
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
