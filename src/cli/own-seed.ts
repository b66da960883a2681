/**
 * A process started from the CLI's snapshot hashes strings with the seed V8 was built with
 * (src/util/snapshot-flags.ts): fine for a command that ends in milliseconds, not for one that
 * serves callers for months. `daemon` and `watch` call this before they open anything: started
 * from the snapshot, the process becomes Node running the bundle (execv: same pid, arguments,
 * environment and descriptors, so a service manager or a shell's job sees no change), and V8 draws
 * a seed of its own; otherwise this returns at once.
 */
import { SNAPSHOT_FLAGS } from '../util/snapshot-flags.js';
import { syscalls } from '../util/syscalls.js';

/** Node's own options without the snapshot and the flags that came with it. */
export function withoutSnapshot(execArgv: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    if (execArgv[i] === '--snapshot-blob') i++;
    else if (!execArgv[i]!.startsWith('--snapshot-blob=') && !SNAPSHOT_FLAGS.includes(execArgv[i]!))
      kept.push(execArgv[i]!);
  }
  return kept;
}

export function runWithOwnHashSeed(): void {
  if (!SNAPSHOT_FLAGS.some((f) => process.execArgv.includes(f))) return;
  try {
    // argv[1]: the bundle, which the snapshot was started with (dist/bin/pipewright passes it).
    syscalls().exec([process.execPath, ...withoutSnapshot(process.execArgv), ...process.argv.slice(1)]);
  } catch (err) {
    // Node's binary gone in an upgrade, say: serving on the fixed seed beats not serving.
    process.stderr.write(
      `pipewright: warning: could not restart as ${process.execPath} running the bundle (${(err as Error).message}); serving with the hash seed V8 was built with\n`,
    );
  }
}
