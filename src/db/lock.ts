/**
 * Host-wide locks between pipewright processes: flock(2) on a file in the state directory. The
 * kernel releases a lock when its holder closes it or dies (kill -9, a reboot), so a lock is never
 * stale and no PID is ever trusted. They guard what a SQLite transaction cannot span, where the
 * kernel is read and then changed:
 *
 *   links      whether a shared host link (a bridge, a shim) exists, is made, or is still used
 *   firewall   the rule set's before/after writes
 *   volumes    a volume's directory and record
 *   networks   a network from its record to its bridge and gateway (create and rm take turns)
 *   idle-networks  a network that lives while it has guests (podman's), from its making to its
 *              guest's record, and its removal once it has none
 *
 * Within one process, callers of the same lock take turns first (flock would let a second open
 * file of the same process wait on the first forever). Not reentrant: a holder never takes the
 * same lock again.
 */
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { PipewrightError } from '../util/errors.js';
import { syscalls } from '../util/syscalls.js';

export type LockName = 'links' | 'firewall' | 'volumes' | 'networks' | 'idle-networks';

const turns = new Map<string, Promise<unknown>>();

export function withLock<T>(stateDir: string, name: LockName, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const path = join(stateDir, `${name}.lock`);
  const mine = () => hostLock(path, fn, timeoutMs);
  const run = (turns.get(path) ?? Promise.resolve()).then(mine, mine);
  turns.set(
    path,
    run.catch(() => {}),
  );
  return run;
}

async function hostLock<T>(path: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const fd = openSync(path, 'a', 0o600);
  try {
    const deadline = Date.now() + timeoutMs;
    while (!syscalls().tryLock(fd)) {
      if (Date.now() > deadline)
        throw new PipewrightError(`another pipewright has held ${path} for over ${timeoutMs / 1000} s; retry later`);
      await new Promise((r) => setTimeout(r, 3));
    }
    return await fn();
  } finally {
    closeSync(fd); // releases the lock
  }
}
