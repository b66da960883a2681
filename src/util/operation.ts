/**
 * Operations inside one process. A CLI process runs one at a time, but the daemon runs many at
 * once (CNI calls, Docker plugin calls, watch's restores, its start sweep), so a record's owner
 * is the operation, not the pid: each has a random id, in flight from its start to its end.
 * Nested calls (attach clearing a leftover, attach restoring) are part of the caller's operation.
 *
 * Operations on one guest interface also take turns inside the process (`withTurnOn`), so no two
 * of them read and change the same record and kernel objects at once; across processes the
 * store's compare-and-set on the record's owner decides.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { PipewrightError } from './errors.js';

const current = new AsyncLocalStorage<string>();
const inFlight = new Set<string>();

/** The operation this code runs in, or null outside any. */
export function currentOperation(): string | null {
  return current.getStore() ?? null;
}

/** Whether this process's operation `id` has started and not ended yet. */
export function operationInFlight(id: string): boolean {
  return inFlight.has(id);
}

/** Runs `fn` as an operation of its own, or as part of the one it is called in. */
export async function runOperation<T>(fn: () => Promise<T>): Promise<T> {
  if (current.getStore()) return fn();
  const id = randomUUID();
  inFlight.add(id);
  try {
    return await current.run(id, fn);
  } finally {
    inFlight.delete(id);
  }
}

/**
 * How long an operation waits for another on the same guest interface: longer than an attach's
 * DHCP wait (30 s), so a DEL waits out the ADD it follows rather than failing.
 */
export const TURN_WAIT_MS = 45_000;

/** Per key: the operation holding it, and a promise that settles when the last queued turn ends. */
const holders = new Map<string, string>();
const tails = new Map<string, Promise<void>>();

/**
 * Runs `fn` (as an operation) once no other operation of this process holds `key`; the one
 * holding it already runs on. Waits at most `waitMs`, then fails naming `what`.
 */
export function withTurnOn<T>(key: string, what: string, fn: () => Promise<T>, waitMs = TURN_WAIT_MS): Promise<T> {
  return runOperation(async () => {
    const op = currentOperation()!;
    if (holders.get(key) === op) return fn();
    const before = tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = before.then(() => new Promise<void>((resolve) => (release = resolve)));
    tails.set(key, mine);
    void mine.then(() => tails.get(key) === mine && tails.delete(key));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), waitMs)));
    const got = await Promise.race([before.then(() => 'turn' as const), late]);
    clearTimeout(timer);
    if (got === 'late') {
      // The turn is given up: whoever queued behind it still waits for the holder.
      void before.then(() => release());
      throw new PipewrightError(
        `another operation on ${what} has been under way for over ${waitMs / 1000} s; retry when it is done`,
      );
    }
    holders.set(key, op);
    try {
      return await fn();
    } finally {
      holders.delete(key);
      release();
    }
  });
}

/**
 * Runs `first` and `second` (if given) at once and returns once both have ended, so neither runs
 * on behind a failure (a lock taken around them is held until both are done). Throws the first
 * one's failure, else the second's.
 */
export async function bothEnded(first: () => Promise<void>, second?: () => Promise<void>): Promise<void> {
  const ended = await Promise.allSettled([first(), (async () => second?.())()]);
  const failed = ended.find((e): e is PromiseRejectedResult => e.status === 'rejected');
  if (failed) throw failed.reason;
}
