/**
 * Volume and mount arguments as users write them, checked before anything happens:
 *   names      Docker's rule ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$
 *   --opt      type=tmpfs,o=size=64m | type=none,o=bind,device=/path (one --opt, or several)
 *   --size     1G, 512M, 100k (an ext4 image with a hard quota)
 *   mounts     <volume-name|/host/path>:<guest-path>[:ro|rw|nocopy[,...]]
 */
import { posix } from 'node:path';
import { UsageError } from '../util/errors.js';

export function checkVolumeName(name: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) {
    throw new UsageError(`volume name "${name}" must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule)`);
  }
  return name;
}

export interface VolumeOptions {
  type?: 'tmpfs' | 'none';
  o?: string;
  device?: string;
  size?: string;
}

/** Splits `type=tmpfs,o=size=64m,uid=1000` at the commas that start a known key, as Docker's --opt pairs. */
export function parseVolumeOpts(opts: string[], size?: string): VolumeOptions {
  const out: VolumeOptions = {};
  for (const pair of opts.flatMap((o) => o.split(/,(?=(?:type|o|device)=)/))) {
    const eq = pair.indexOf('=');
    const [key, value] = [pair.slice(0, eq), pair.slice(eq + 1)];
    if (key === 'type') {
      if (value !== 'tmpfs' && value !== 'none')
        throw new UsageError(`--opt type=${value}: only tmpfs and none (bind) are supported`);
      out.type = value;
    } else if (key === 'o' || key === 'device') out[key] = value;
    else throw new UsageError(`--opt "${pair}": known options are type, o and device`);
  }
  if (out.type === 'none') checkBindOpts(out);
  if (out.device && !out.device.startsWith('/'))
    throw new UsageError(`--opt device=${out.device} must be an absolute path`);
  if (size !== undefined) {
    if (out.type) throw new UsageError('--size makes its own filesystem; it cannot be combined with --opt type=');
    sizeBytes(size);
    out.size = size;
  }
  return out;
}

/** What a bind-backed volume's o= may say: a bind, and the flags mount(8) applies to one. */
const BIND_WORDS = ['bind', 'rbind', 'ro', 'rw', 'nosuid', 'nodev', 'noexec'];

function checkBindOpts(opts: VolumeOptions): void {
  const words = (opts.o ?? '').split(',');
  if (!opts.device || !words.some((w) => w === 'bind' || w === 'rbind'))
    throw new UsageError('--opt type=none needs o=bind and device=/host/path');
  const unknown = words.find((w) => !BIND_WORDS.includes(w));
  if (unknown !== undefined)
    throw new UsageError(`--opt o=${opts.o}: "${unknown}" is not one of ${BIND_WORDS.join(', ')}`);
}

/** 1G / 512M / 100k / 1048576 in bytes (powers of 1024); at least 1 MiB, ext4's practical floor. */
export function sizeBytes(text: string): number {
  const m = /^(\d+)([kKmMgGtT]?)[bB]?$/.exec(text);
  if (!m) throw new UsageError(`size "${text}" must look like 512M or 1G`);
  const bytes = Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' ');
  if (bytes < 1024 * 1024) throw new UsageError(`size "${text}" is below 1M`);
  return bytes;
}

export interface MountSpec {
  /** A named volume, or null for a bind mount of `hostPath`. */
  volume: string | null;
  hostPath: string | null;
  target: string;
  readonly: boolean;
  nocopy: boolean;
}

export function parseMountSpec(text: string): MountSpec {
  const [source, target, flags, extra] = text.split(':');
  if (!source || !target || extra !== undefined) {
    throw new UsageError(`mount "${text}" must be <volume-name|/host/path>:<guest-path>[:ro]`);
  }
  const options = (flags ?? '').split(',').filter(Boolean);
  for (const o of options)
    if (!['ro', 'rw', 'nocopy'].includes(o)) throw new UsageError(`mount option "${o}" must be ro, rw or nocopy`);
  const isPath = source.startsWith('/');
  return {
    volume: isPath ? null : checkVolumeName(source),
    hostPath: isPath ? posix.normalize(source) : null,
    target: checkContainerPath(target),
    readonly: options.includes('ro'),
    nocopy: options.includes('nocopy'),
  };
}

export function checkContainerPath(path: string): string {
  const norm = posix.normalize(path);
  if (!path.startsWith('/') || norm === '/' || path.split('/').includes('..')) {
    throw new UsageError(`guest path "${path}" must be absolute, not / and without ..`);
  }
  return norm.replace(/\/$/, '');
}
