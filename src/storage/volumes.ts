/**
 * Named volumes: a directory the operator names and pipewright places, under
 * <state-dir>/volumes/<name>/_data, optionally backed by a tmpfs, a bind of another host path, or
 * an ext4 image of fixed size on a loop device (a hard quota). Backing mounts do not survive a
 * reboot; `ensureBacked` puts them back before any use.
 */
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { PipewrightError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { StepLog } from '../util/log.js';
import { silent } from '../util/log.js';
import type { Store } from '../db/store.js';
import {
  deleteVolume,
  findVolume,
  insertVolume,
  listMounts,
  listVolumes,
  pluginMounts,
  type VolumeRecord,
} from '../db/volumes.js';
import { matchesLabels, parseLabels } from '../util/labels.js';
import { checkVolumeName, sizeBytes, type VolumeOptions } from './spec.js';
import { checkHostPath } from './host-path.js';
import { UndoStack } from '../util/undo.js';
import { withLock } from '../db/lock.js';
import { namedStep } from '../util/faults.js';

/** What storage operations need of the core context: the store, and where to report steps. */
export interface StorageContext {
  store: Store;
  log?: StepLog;
}

export const volumesDir = (stateDir: string) => join(stateDir, 'volumes');
export const volumeDir = (stateDir: string, name: string) => join(volumesDir(stateDir), name);
export const dataDir = (stateDir: string, name: string) => join(volumeDir(stateDir, name), '_data');
const imageFile = (stateDir: string, name: string) => join(volumeDir(stateDir, name), 'image.ext4');

/**
 * Whether `dir` is a mount point, from /proc/self/mountinfo (comparing st_dev with the parent's
 * misses a bind mount from the same filesystem).
 */
function isMountPoint(dir: string): boolean {
  if (!existsSync(dir)) return false;
  const real = realpathSync(dir);
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line && unescape(line.split(' ')[4]) === real);
}

/** On every backing mount: a set-uid file or device node a container plants is inert on the host too. */
const INERT = 'nosuid,nodev';

/**
 * The mount command that backs a volume's _data (a bind source as an open fd's path), or null for a
 * plain directory.
 */
function backingMount(stateDir: string, v: VolumeRecord, bindFd: number | null): string[] | null {
  const data = dataDir(stateDir, v.name);
  const o = v.options as VolumeOptions;
  if (o.type === 'tmpfs') return ['-t', 'tmpfs', '-o', o.o ? `${o.o},${INERT}` : INERT, 'tmpfs', data];
  // -c: mount(8) must not resolve the fd's path back into a name; mount(2) follows it to the opened directory.
  if (o.type === 'none') return ['-c', '-o', `${o.o!},${INERT}`, `/proc/${process.pid}/fd/${bindFd}`, data];
  if (o.size) return ['-o', `loop,${INERT}`, imageFile(stateDir, v.name), data];
  return null;
}

/** Mounts the volume's backing store if it is not mounted (after a reboot, say). */
export async function ensureBacked(ctx: StorageContext, v: VolumeRecord): Promise<void> {
  if (isMountPoint(dataDir(ctx.store.stateDir, v.name))) return;
  const device = (v.options as VolumeOptions).device;
  const fd = device ? openBindSource(v.name, device) : null;
  try {
    const args = backingMount(ctx.store.stateDir, v, fd);
    if (args) await run('mount', args, { log: ctx.log });
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/**
 * Opens a bind-backed volume's source, resolved once at create: the directory opened must still
 * be the one recorded, so a path component swapped for a symlink since then redirects nothing
 * (the mount is made from this fd, not from the name again).
 */
function openBindSource(volume: string, device: string): number {
  let fd: number;
  try {
    fd = openSync(device, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    throw new PipewrightError(
      `the bind source ${device} of volume ${volume} cannot be opened (${(err as NodeJS.ErrnoException).code}); restore it or remove the volume`,
    );
  }
  const opened = realpathSync(`/proc/self/fd/${fd}`);
  if (opened !== device) {
    closeSync(fd);
    throw new PipewrightError(
      `the bind source ${device} of volume ${volume} now leads to ${opened}; restore it or remove the volume`,
    );
  }
  return fd;
}

/**
 * Creates a volume; one that exists is an error. Under the host's `volumes` lock: of two creates
 * of one name, the second finds the first's record and touches nothing (its rollback would
 * otherwise remove the first one's directory).
 */
export function createVolume(
  ctx: StorageContext,
  name: string,
  options: VolumeOptions,
  labels: string[] = [],
): Promise<VolumeRecord> {
  checkVolumeName(name);
  // The bind source is resolved once, here, and kept: later mounts check they open that directory.
  const resolved = options.device
    ? { ...options, device: checkHostPath(options.device, ctx.store.stateDir, { mustExist: true }) }
    : options;
  return withLock(ctx.store.stateDir, 'volumes', async () => {
    if (findVolume(ctx.store, name)) throw new PipewrightError(`volume ${name} exists already`);
    return makeVolume(ctx, name, resolved, labels);
  });
}

/** A named volume as Docker gives one on first use: the one recorded, or a new plain one. */
export function volumeFor(ctx: StorageContext, name: string): Promise<VolumeRecord> {
  checkVolumeName(name);
  return withLock(
    ctx.store.stateDir,
    'volumes',
    async () => findVolume(ctx.store, name) ?? makeVolume(ctx, name, {}, []),
  );
}

/**
 * `volumeFor`, backed, and `use` run on it while the `volumes` lock is still held: a mount
 * recorded in `use` is seen by any `volume rm` after it (rm holds the lock from its users check
 * to the removal).
 */
export function withVolume<T>(ctx: StorageContext, name: string, use: (v: VolumeRecord) => T): Promise<T> {
  checkVolumeName(name);
  return withLock(ctx.store.stateDir, 'volumes', async () => {
    const v = findVolume(ctx.store, name) ?? (await makeVolume(ctx, name, {}, []));
    await ensureBacked(ctx, v);
    return use(v);
  });
}

async function makeVolume(
  ctx: StorageContext,
  name: string,
  options: VolumeOptions,
  labels: string[],
): Promise<VolumeRecord> {
  const rec: VolumeRecord = {
    name,
    labels: parseLabels(labels),
    options: { ...options } as Record<string, string>,
    createdAt: new Date().toISOString(),
  };
  const dir = volumeDir(ctx.store.stateDir, name);
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    await undo.step(
      `create ${dir}`,
      () => {
        // volumes/ and each volume's dir: root's only (older ones were 0755). _data keeps 0755:
        // it is the mount's root inside containers, whose users need it.
        mkdirSync(volumesDir(ctx.store.stateDir), { recursive: true, mode: 0o700 });
        chmodSync(volumesDir(ctx.store.stateDir), 0o700);
        mkdirSync(dir, { mode: 0o700 });
        mkdirSync(dataDir(ctx.store.stateDir, name), { mode: 0o755 });
      },
      () => rmSync(dir, { recursive: true, force: true }),
    );
    if (options.size)
      await undo.step(`make a ${options.size} ext4 image`, () => makeImage(ctx, name, sizeBytes(options.size!)));
    await undo.step(
      'mount its backing store',
      () => ensureBacked(ctx, rec),
      () => unback(ctx, rec),
    );
    ctx.store.tx(() => insertVolume(ctx.store, rec));
    return rec;
  });
}

async function makeImage(ctx: StorageContext, name: string, bytes: number): Promise<void> {
  const file = imageFile(ctx.store.stateDir, name);
  (ctx.log ?? silent).step(`truncate -s ${bytes} ${file}`);
  const fd = openSync(file, 'w', 0o600);
  ftruncateSync(fd, bytes);
  closeSync(fd);
  await run('mkfs.ext4', ['-q', '-F', '-m', '0', file], { log: ctx.log });
}

async function unback(ctx: StorageContext, v: VolumeRecord): Promise<void> {
  const data = dataDir(ctx.store.stateDir, v.name);
  // Stacked mounts (an older version stacked one per use): all of them.
  while (isMountPoint(data)) await run('umount', [data], { log: ctx.log });
}

export function getVolume(ctx: StorageContext, name: string): VolumeRecord {
  const v = findVolume(ctx.store, checkVolumeName(name));
  if (!v) throw new PipewrightError(`no volume named ${name} (see 'pipewright volume ls')`);
  return v;
}

/** Who has a volume mounted: guests pipewright mounted it into, and Docker's mounts through the plugin. */
function usersOf(ctx: StorageContext, name: string): string[] {
  return [
    ...listMounts(ctx.store, { volume: name }).map((m) => `${m.guestName}:${m.target}`),
    ...pluginMounts(ctx.store, name).map((id) => `docker mount ${id.slice(0, 12)}`),
  ];
}

/**
 * Removes a volume and its data; refused while a guest has it mounted. Under the `volumes` lock
 * from the users check to the end: a mount claims its volume under that lock (`withVolume`).
 */
export function removeVolume(ctx: StorageContext, name: string): Promise<void> {
  return withLock(ctx.store.stateDir, 'volumes', async () => {
    const v = getVolume(ctx, name);
    const users = usersOf(ctx, name);
    if (users.length) throw new PipewrightError(`volume ${name} is in use by ${users.join(', ')}; unmount it first`);
    await namedStep(`volume rm ${name}: unmount`, () => unback(ctx, v));
    await namedStep(`volume rm ${name}: data`, () => removeDir(volumeDir(ctx.store.stateDir, name)));
    await namedStep(`volume rm ${name}: record`, () => ctx.store.tx(() => deleteVolume(ctx.store, name)));
  });
}

/** Removes a volume's directory, never across a mount still on its data (that would be someone's data). */
function removeDir(dir: string): void {
  if (isMountPoint(join(dir, '_data'))) throw new PipewrightError(`${dir}/_data is still mounted; unmount it first`);
  rmSync(dir, { recursive: true, force: true });
}

/** Volume directories without a record (a create that was killed): their backing unmounted, then removed. */
export function collectOrphanVolumes(ctx: StorageContext): Promise<string[]> {
  return withLock(ctx.store.stateDir, 'volumes', async () => {
    const dir = volumesDir(ctx.store.stateDir);
    const orphans = existsSync(dir) ? readdirSync(dir).filter((name) => !findVolume(ctx.store, name)) : [];
    for (const name of orphans) {
      const data = dataDir(ctx.store.stateDir, name);
      while (isMountPoint(data)) await run('umount', [data], { log: ctx.log });
      removeDir(volumeDir(ctx.store.stateDir, name));
    }
    return orphans;
  });
}

/** Removes every volume no guest uses (and that carries these labels). */
export async function pruneVolumes(ctx: StorageContext, labelFilters: string[] = []): Promise<string[]> {
  const removed: string[] = [];
  for (const v of listVolumes(ctx.store)) {
    if (!matchesLabels(v.labels, labelFilters) || usersOf(ctx, v.name).length) continue;
    await removeVolume(ctx, v.name);
    removed.push(v.name);
  }
  return removed;
}

/** Docker's `volume inspect` fields, plus UsageData (bytes used, guests using it). */
export async function inspectVolume(ctx: StorageContext, v: VolumeRecord) {
  const data = dataDir(ctx.store.stateDir, v.name);
  const du = await run('du', ['-sb', data], { allowFailure: true });
  return {
    CreatedAt: v.createdAt.replace(/\.\d+Z$/, 'Z'),
    Driver: 'local',
    Labels: v.labels,
    Mountpoint: data,
    Name: v.name,
    Options: v.options,
    Scope: 'local',
    UsageData: {
      Size: du.exitCode === 0 ? Number(du.stdout.split('\t')[0]) : -1,
      RefCount: listMounts(ctx.store, { volume: v.name }).length,
    },
  };
}

/** What a volume holds, but an ext4 image's lost+found. */
const contents = (dir: string) => readdirSync(dir).filter((f) => f !== 'lost+found');

export function isEmptyDir(dir: string): boolean {
  return contents(dir).length === 0;
}

/** Empties a volume's data dir again (a copy-up undone); rmSync follows no symlink. */
export function emptyDir(dir: string): void {
  for (const f of contents(dir)) rmSync(join(dir, f), { recursive: true, force: true });
}
