/**
 * The entry of the CLI's V8 startup snapshot (scripts/bundle.mjs builds it; dist/bin/pipewright
 * starts Node from it). Building runs this file once: commander and every command group are loaded
 * and initialized then, and saved with the heap, so a command starts with that work already done.
 * When the snapshot starts, dist/bin/pipewright (or the daemon, for a warm worker) has put the
 * bundle's path in argv[1]: packages outside the snapshot (native addons, ajv, yaml) are required
 * from there, as the bundle would; etcd3, bundled apart, from dist/snapshot/etcd3.cjs next to it.
 */
import { createRequire } from 'node:module';
import { startupSnapshot } from 'node:v8';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildProgram, enter } from './main.js';
import { requireWithCodeCache } from './code-cache.js';
import { warmUp } from './warm-up.js';

declare global {
  var __pwEntry: string | undefined;
  var __pwEntryUrl: string | undefined;
  var __pwRequire: NodeJS.Require | undefined;
  var __pwRequireApart: ((relative: string) => unknown) | undefined;
}

// Built while the snapshot is made: the command tree is part of the saved heap, and so are the
// modules the everyday commands load (their top level runs now, not at each start). A module
// here must not read the environment, the process or its own path at its top level, nor load
// node:http (a snapshot cannot hold it; runtime/docker.ts loads it on first use).
const program = buildProgram();
for (const load of [
  () => import('../ops/context.js'),
  () => import('../ops/firewall-sync.js'),
  () => import('../net/firewall/nftables.js'),
  () => import('../net/firewall/iptables.js'),
  () => import('./attach-run.js'),
  () => import('./show-run.js'),
  () => import('../ops/network.js'),
  () => import('./storage-run.js'),
  () => import('./warm-worker.js'),
]) {
  void load();
}
// And the code every command runs, on throwaway data: V8 keeps it compiled (warm-up.ts).
void warmUp();

/** A global made on first use: `--version` or a usage error needs neither a URL nor a require (~1 ms). */
function onFirstUse<K extends '__pwEntryUrl' | '__pwRequire'>(name: K, make: () => (typeof globalThis)[K]): void {
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get: () => {
      const value = make();
      Object.defineProperty(globalThis, name, { value });
      return value;
    },
  });
}

startupSnapshot.setDeserializeMainFunction(() => {
  // As Node does for a script it runs: argv[1] made absolute.
  const entry = resolve(process.argv[1]);
  process.argv[1] = entry;
  globalThis.__pwEntry = entry;
  onFirstUse('__pwEntryUrl', () => pathToFileURL(entry).href);
  onFirstUse('__pwRequire', () => createRequire(entry));
  globalThis.__pwRequireApart = (relative) => requireWithCodeCache(resolve(dirname(entry), relative));
  void enter(program);
});
