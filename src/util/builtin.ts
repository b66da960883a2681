/**
 * A Node built-in loaded on first use, through require: the same call works from tsc's dist/,
 * from the bundle and from the CLI's startup snapshot, where a dynamic import() at run time has no
 * loader ("A dynamic import callback was not specified"). For built-ins a snapshot cannot hold
 * (node:http) or that few commands need.
 */
import { createRequire } from 'node:module';

export function loadBuiltin<T>(name: `node:${string}`): T {
  return createRequire(import.meta.url)(name) as T;
}
