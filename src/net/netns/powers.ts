/**
 * What bounds a process on this host, read from /proc: its namespaces, root directory,
 * capabilities, no_new_privs and seccomp. A daemon compares its callers with itself before it
 * does anything for them (a worker never gives a caller more than it has), and every pipewright
 * process checks its own powers before it touches the store or the kernel.
 */
import { readFileSync, statSync } from 'node:fs';
import { PipewrightError } from '../../util/errors.js';
import { syscalls } from '../../util/syscalls.js';

/** Fact name ("net namespace", "CapEff", ...) -> its value for one process. */
export type Bounds = Map<string, string>;

const NAMESPACES = ['net', 'mnt', 'pid', 'user', 'uts', 'ipc', 'cgroup'];
/** /proc/<pid>/status fields that bound what a root process may do. */
const POWERS = ['CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp'];
/** Capabilities pipewright uses: links, addresses, routes and rules; setns and mounts. */
const NEEDED = { CAP_NET_ADMIN: 12, CAP_SYS_ADMIN: 21 };
/**
 * The initial user namespace's inode number (PROC_USER_INIT_INO, include/linux/proc_ns.h), fixed
 * since Linux 3.8; the kernel numbers every other namespace from 0xF0000000 up. Not the uid_map
 * text: root can give a child user namespace the full identity map (audit #23). Not /proc/1's
 * namespace either: in a container with its own pid namespace, pid 1 shares the container's.
 */
export const INIT_USER_NS_INO = 4026531837;

export function boundsOf(pid: number | 'self'): Bounds {
  const facts: Bounds = new Map();
  const inode = (path: string) => {
    const { dev, ino } = statSync(path);
    return `${dev}:${ino}`;
  };
  for (const ns of NAMESPACES) facts.set(`${ns} namespace`, inode(`/proc/${pid}/ns/${ns}`));
  facts.set('root directory', inode(`/proc/${pid}/root`));
  const status = new Map(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .map((l) => l.split(':\t') as [string, string]),
  );
  for (const field of POWERS) facts.set(field, status.get(field) ?? '');
  return facts;
}

/**
 * A caller's bounds, read from /proc while its pidfd shows it still running (so its pid was not
 * given to another process in between); undefined when it went before it was read.
 */
export function boundsWhileAlive(pid: number, pidfd: number): Bounds | undefined {
  const bounds = boundsOf(pid);
  return syscalls().exited(pidfd) ? undefined : bounds;
}

/** The facts in which two processes differ. */
export function differing(mine: Bounds, theirs: Bounds): string[] {
  return [...mine.keys()].filter((k) => theirs.get(k) !== mine.get(k));
}

const capabilities = (hex: string | undefined) => BigInt(`0x${hex || '0'}`);

/**
 * Why a caller of a daemon's socket could not have done itself what the daemon would do for it,
 * or undefined when it could: the daemon's user, mount and network namespaces and root directory
 * (paths and links mean the same to both), every capability the daemon holds, and no seccomp
 * filter where the daemon has none.
 */
export function weakerThan(mine: Bounds, theirs: Bounds): string | undefined {
  const reasons = ['user namespace', 'mnt namespace', 'net namespace', 'root directory']
    .filter((k) => theirs.get(k) !== mine.get(k))
    .map((k) => `another ${k}`);
  const lacking = capabilities(mine.get('CapEff')) & ~capabilities(theirs.get('CapEff'));
  if (lacking) reasons.push(`fewer capabilities (CapEff lacks 0x${lacking.toString(16)})`);
  if (theirs.get('Seccomp') !== '0' && theirs.get('Seccomp') !== mine.get('Seccomp')) reasons.push('a seccomp filter');
  return reasons.length ? reasons.join(', ') : undefined;
}

/** Why this process may not change the host, or undefined: root's powers in the host's user namespace. */
export function lackOfPowers(
  status = readFileSync('/proc/self/status', 'utf8'),
  userNs = statSync('/proc/self/ns/user').ino,
): string | undefined {
  if (userNs !== INIT_USER_NS_INO) return "runs in a user namespace of its own, whose root is not the host's";
  const eff = capabilities(/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1]);
  const missing = Object.entries(NEEDED).filter(([, bit]) => !(eff & (1n << BigInt(bit))));
  return missing.length ? `lacks ${missing.map(([name]) => name).join(' and ')}` : undefined;
}

/** Throws the one-line error when this process lacks the powers pipewright needs (before anything is touched). */
export function requirePowers(): void {
  const why = lackOfPowers();
  if (why)
    throw new PipewrightError(
      `this command needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN in the host's user namespace; this process ${why} (run it as root, e.g. with sudo)`,
    );
}
