/** The native addon's system calls (native/syscalls.c: setns, flock), loaded on first use. */
import { createRequire } from 'node:module';
import { shipped } from './paths.js';

interface Syscalls {
  setns(fd: number, nstype: number): void;
  /** flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another holder has it. */
  tryLock(fd: number): boolean;
}

const require = createRequire(import.meta.url);
let addon: Syscalls | undefined;

export function syscalls(): Syscalls {
  addon ??= require(shipped('dist/syscalls.node')) as Syscalls;
  return addon;
}
