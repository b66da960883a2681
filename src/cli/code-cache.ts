/**
 * Loads a CommonJS file that is kept out of the startup snapshot (etcd3 with gRPC and protobufjs:
 * dist/snapshot/etcd3.cjs) with V8's code cache for it (`<file>.cache`, written at build time by
 * writeCodeCache): the 1.2 MB is then not compiled at each start that needs it. A cache that this
 * Node does not accept (another V8, or no cache) only costs the compilation.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { Script } from 'node:vm';

type ModuleWrapper = (
  exports: unknown,
  require: NodeJS.Require,
  module: { exports: unknown },
  filename: string,
  dirname: string,
) => void;

/** Runs the file's top level, compiled with the cache given (its script says whether V8 took it). */
export function compile(path: string, cachedData?: Buffer): { script: Script; exports: unknown } {
  const file = resolve(path);
  const source = readFileSync(file, 'utf8');
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new Script(wrapped, { filename: file, cachedData });
  const mod = { exports: {} as unknown };
  (script.runInThisContext() as ModuleWrapper)(mod.exports, createRequire(file), mod, file, dirname(file));
  return { script, exports: mod.exports };
}

function readCache(file: string): Buffer | undefined {
  try {
    return readFileSync(`${file}.cache`);
  } catch {
    return undefined;
  }
}

export function requireWithCodeCache(file: string): unknown {
  return compile(file, readCache(file)).exports;
}

/** At build time: runs the file's top level, then saves the code compiled so far as its cache. */
export function writeCodeCache(file: string): void {
  writeFileSync(`${file}.cache`, compile(file).script.createCachedData());
}
