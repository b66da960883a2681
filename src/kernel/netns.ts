/**
 * Network namespaces as paths a file descriptor or a tool in another namespace can open, and
 * their identity: the (device, inode) of the namespace file, which a path like /proc/<pid>/ns/net
 * does not keep once the pid is reused.
 */
import { statSync } from 'node:fs';

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
