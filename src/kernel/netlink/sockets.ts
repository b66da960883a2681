/**
 * rtnetlink sockets: one for the host's namespace (opened once per process), and short-lived
 * ones inside a guest's namespace. A socket belongs to the namespace of the thread that created
 * it, so for a guest the main thread enters the guest's namespace (the netns.node addon), creates
 * the socket, and comes back before anything else runs.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RtNetlinkSocket } from 'netlink';
import type * as Netlink from 'netlink';
import { shipped } from '../../util/paths.js';

const require = createRequire(import.meta.url);
// require(), not import: an ES import of a CommonJS package makes Node scan its source for exports first.
export const netlink = require('netlink') as typeof Netlink;
const { createRtNetlink } = netlink;
const CLONE_NEWNET = 0x40000000;

let addon: { setns(fd: number, nstype: number): void } | undefined;
function setns(fd: number): void {
  addon ??= require(shipped('dist/netns.node')) as { setns(fd: number, nstype: number): void };
  addon.setns(fd, CLONE_NEWNET);
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

/** Runs fn with a socket inside the namespace at `netnsPath`, closed afterwards. */
export async function withNetnsSocket<T>(netnsPath: string, fn: (sock: RtNetlinkSocket) => Promise<T>): Promise<T> {
  const self = openSync('/proc/thread-self/ns/net', 'r');
  const target = openSync(netnsPath, 'r');
  let sock: RtNetlinkSocket;
  try {
    setns(target);
    try {
      sock = createRtNetlink();
    } finally {
      setns(self);
    }
  } finally {
    closeSync(target);
    closeSync(self);
  }
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
