/** The native addon's system calls (native/syscalls.c: setns, flock, rtnetlink), loaded on first use. */
import { loadAddon } from './addon.js';
import { shipped } from './paths.js';

interface Syscalls {
  setns(fd: number, nstype: number): void;
  /** flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another holder has it. */
  tryLock(fd: number): boolean;
  /** A NETLINK_ROUTE socket in the calling thread's network namespace. */
  nlOpen(): number;
  /** Sends one netlink request; resolves with the answer's datagrams, up to its ack, error or NLMSG_DONE. */
  nlRequest(fd: number, message: Buffer): Promise<Buffer>;
}

let addon: Syscalls | undefined;

export function syscalls(): Syscalls {
  addon ??= loadAddon<Syscalls>(shipped('dist/syscalls.node'));
  return addon;
}
