/** The native addon's system calls (native/syscalls.c: setns, flock), loaded on first use. */
import { loadAddon } from './addon.js';
import { shipped } from './paths.js';

interface Syscalls {
  setns(fd: number, nstype: number): void;
  /** flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another holder has it. */
  tryLock(fd: number): boolean;
}

let addon: Syscalls | undefined;

export function syscalls(): Syscalls {
  addon ??= loadAddon<Syscalls>(shipped('dist/syscalls.node'));
  return addon;
}
