/**
 * Network namespaces as paths a file descriptor or a tool in another namespace can open, and
 * their identity: the (device, inode) of the namespace file, which a path like /proc/<pid>/ns/net
 * does not keep once the pid is reused. An operation holds the namespace open (NetnsHandle) and
 * works through its fd, so a pid reused meanwhile cannot send a later step somewhere else.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';

/** The namespace of a process. */
export function processNetns(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

/** This process's own namespace (the host's, for pipewright). */
export function ownNetns(): string {
  return processNetns(process.pid);
}

/** "<dev>:<ino>" of the namespace at `path`, or null when nothing is there. */
export function netnsIdentity(path: string): string | null {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

/**
 * The recorded path if it still names the recorded namespace, else null (the guest is gone, and
 * the path may name another one now). A record without an identity (older versions): the path if it exists.
 */
export function liveNetns(path: string, id: string | null): string | null {
  const now = netnsIdentity(path);
  return now !== null && (id === null || now === id) ? path : null;
}

/** A namespace held open for one operation. */
export interface NetnsHandle {
  readonly fd: number;
  /** `/proc/self/fd/<fd>`: what every step of the operation opens, never the file it was found by. */
  readonly path: string;
  /** "<dev>:<ino>", read on the fd itself. */
  readonly id: string;
}

/** Opens the namespace at `path`; throws (ENOENT) when nothing is there. Close it with releaseNetns. */
export function holdNetns(path: string): NetnsHandle {
  const fd = openSync(path, 'r');
  const st = fstatSync(fd);
  return { fd, path: `/proc/self/fd/${fd}`, id: `${st.dev}:${st.ino}` };
}

export function releaseNetns(h: NetnsHandle): void {
  closeSync(h.fd);
}

/**
 * liveNetns, held: the recorded namespace open, checked on the fd, or null when the path names no
 * namespace or another one.
 */
export function holdLiveNetns(path: string, id: string | null): NetnsHandle | null {
  let h: NetnsHandle;
  try {
    h = holdNetns(path);
  } catch {
    return null;
  }
  if (id === null || h.id === id) return h;
  releaseNetns(h);
  return null;
}
