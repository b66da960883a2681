/** Host paths given for bind mounts: resolved (symlinks), and kept away from what must not be exposed. */
import { existsSync, realpathSync } from 'node:fs';
import { normalize } from 'node:path';
import { PipewrightError, UsageError } from '../util/errors.js';

const SENSITIVE = ['/proc', '/sys', '/dev'];

/**
 * The real path of a host path for a bind mount. Refused unless `allowSensitive`: the host's `/`,
 * anything in /proc, /sys or /dev, and pipewright's own state directory (or a parent of it).
 */
export function checkHostPath(
  path: string,
  stateDir: string,
  opts: { mustExist?: boolean; allowSensitive?: boolean } = {},
): string {
  if (!path.startsWith('/')) throw new UsageError(`host path "${path}" must be absolute`);
  if (!existsSync(path)) {
    if (opts.mustExist !== false)
      throw new PipewrightError(`host path ${path} does not exist (use --create to make it)`);
    return path;
  }
  const real = realpathSync(path);
  if (!opts.allowSensitive) checkHostPolicy(real, stateDir, path);
  return real;
}

/**
 * The policy alone, on a path with no symlink and no `.`/`..` in it (the helper opens it with no
 * symlink followed, so the string names the very object opened): `/`, /proc, /sys, /dev and the
 * state dir refused.
 */
export function checkHostPolicy(real: string, stateDir: string, asWritten = real): void {
  const state = existsSync(stateDir) ? realpathSync(stateDir) : stateDir;
  const under = (p: string, dir: string) => p === dir || p.startsWith(`${dir}/`);
  const exposes = real === '/' || SENSITIVE.some((d) => under(real, d)) || under(real, state) || under(state, real);
  if (exposes || normalize(real) !== real || real.endsWith('/')) {
    throw new PipewrightError(
      `refusing to mount ${real}${real !== asWritten ? ` (${asWritten})` : ''}: it exposes the host; use --allow-sensitive if you mean it`,
    );
  }
}
