/**
 * Mounting into a running guest, without restarting it and without any tool in its image: the
 * native helper (native/pipewright-mount.c) clones the host directory as a detached mount, enters
 * the guest's mount namespace and moves it onto the target. Every mount is recorded, so volumes in
 * use cannot be removed and `volume ls` shows their users.
 */
import { mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { shipped } from '../util/paths.js';
import { describe, PipewrightError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { pidStartTime } from '../util/process.js';
import type { Guest } from '../runtime/guest.js';
import { deleteMount, findVolume, insertMount, listMounts, setMountSource, type MountRecord } from '../db/volumes.js';
import { UndoStack } from '../util/undo.js';
import { checkHostPath, checkHostPolicy } from './host-path.js';
import type { MountSpec } from './spec.js';
import { dataDir, emptyDir, ensureBacked, isEmptyDir, volumeFor, withVolume, type StorageContext } from './volumes.js';

function helper(args: string[], ctx: StorageContext) {
  return run(shipped('dist/pipewright-mount'), args, { log: ctx.log });
}

export interface MountOptions {
  /** Create a missing bind-mount source directory. */
  create?: boolean;
  allowSensitive?: boolean;
}

function guestPid(guest: Guest): number {
  if (!guest.pid)
    throw new PipewrightError(
      `${guest.name} is a bare network namespace; mounts need a container or a process (docker:<name>, pid:<n>)`,
    );
  return guest.pid;
}

/**
 * The guest's process as the helper takes it, "<pid>@<start time>": the helper compares the
 * start time after opening its pidfd, so a pid reused since this check is refused there.
 */
function guestProc(guest: Guest): string {
  const pid = guestPid(guest);
  const start = guest.kind === 'pid' ? guest.id.split('@')[1] : pidStartTime(pid);
  if (!start) throw new PipewrightError(`${guest.name} no longer runs (pid ${pid}); start it again`);
  return `${pid}@${start}`;
}

/**
 * The host directory a mount spec names (a named volume is created on first use, as Docker does,
 * and its backing mounted); `fresh`: an empty named volume, which takes the target's content.
 */
export async function mountSource(
  ctx: StorageContext,
  spec: MountSpec,
  opts: MountOptions,
): Promise<{ path: string; fresh: boolean }> {
  if (spec.volume) {
    const v = await volumeFor(ctx, spec.volume);
    await ensureBacked(ctx, v);
    const path = dataDir(ctx.store.stateDir, v.name);
    return { path, fresh: isEmptyDir(path) };
  }
  return { path: bindSource(ctx, spec, opts), fresh: false };
}

/** A bind's host path, resolved and checked (the helper then opens exactly it, no symlink followed). */
function bindSource(ctx: StorageContext, spec: MountSpec, opts: MountOptions): string {
  if (opts.create) mkdirSync(spec.hostPath!, { recursive: true });
  return checkHostPath(spec.hostPath!, ctx.store.stateDir, { allowSensitive: opts.allowSensitive });
}

/** A volume's data dir with no symlink in it (the helper refuses any): the state dir may be reached through one. */
const volumePath = (ctx: StorageContext, name: string) => realpathSync(dataDir(ctx.store.stateDir, name));

/** The same target mounted already: nothing to do if from the same source, else refused. */
function alreadyThere(same: MountRecord, spec: MountSpec, hostPath: string | null, target: string) {
  const sameSource = spec.volume ? same.volume === spec.volume : same.hostPath === hostPath;
  if (sameSource && same.readonly === spec.readonly) return { mount: same, changed: false };
  throw new PipewrightError(
    `${same.guestName} already has ${same.volume ?? same.hostPath} mounted at ${target}; unmount it first`,
  );
}

/**
 * Records the mount before it is made. A volume is claimed under the `volumes` lock, which
 * `volume rm` holds from its users check to the removal: either the rm sees this user, or the
 * volume is made anew here.
 */
function claim(ctx: StorageContext, guest: Guest, spec: MountSpec, target: string, hostPath: string | null) {
  const record = (path: string) =>
    ctx.store.tx(() =>
      insertMount(ctx.store, {
        volume: spec.volume ?? null,
        hostPath: path,
        guestKind: guest.kind,
        guestId: guest.id,
        guestName: guest.name,
        target,
        readonly: spec.readonly,
      }),
    );
  if (!spec.volume) return Promise.resolve({ id: record(hostPath!), path: hostPath!, fresh: false });
  return withVolume(ctx, spec.volume, (v) => {
    const path = volumePath(ctx, v.name);
    return { id: record(path), path, fresh: isEmptyDir(path) };
  });
}

export async function mountInto(
  ctx: StorageContext,
  guest: Guest,
  spec: MountSpec,
  opts: MountOptions = {},
): Promise<{ mount: MountRecord; changed: boolean }> {
  const proc = guestProc(guest);
  const mine = listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id });
  const hostPath = spec.volume ? null : bindSource(ctx, spec, opts);
  const early = mine.find((m) => m.target === spec.target);
  if (early) return alreadyThere(early, spec, hostPath, spec.target);
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    // Resolved inside the container: its symlinks can never point us at a host path. Recorded
    // resolved, so unmount and restores act on this place whatever its links say later.
    const target = (
      await undo.step(`prepare ${spec.target} in ${guest.name}`, () =>
        helper(['prepare', proc, spec.target, 'mkdir'], ctx),
      )
    ).stdout.trim();
    const same = mine.find((m) => m.target === target);
    if (same) return alreadyThere(same, spec, hostPath, target);
    const claimed = await undo.step(`record the mount at ${target}`, () => claim(ctx, guest, spec, target, hostPath));
    undo.push(`forget the mount at ${target}`, () => ctx.store.tx(() => deleteMount(ctx.store, claimed.id)));
    // Docker's copy-up: a fresh named volume takes the image's content at that path. The helper
    // reads it from inside the container, so no symlink there can make it copy a host path. A
    // copy that fails is removed (the volume was empty).
    if (claimed.fresh && !spec.nocopy) {
      await undo.step(
        `copy ${target} of ${guest.name} into the volume`,
        async () => {
          try {
            return await helper(['copyup', proc, target, claimed.path], ctx);
          } catch (err) {
            emptyDir(claimed.path);
            throw err;
          }
        },
        () => emptyDir(claimed.path),
      );
    }
    const mounted = await undo.step(
      `mount ${claimed.path} at ${target} in ${guest.name}`,
      () => helper(['mount', proc, claimed.path, target, '-', ...(spec.readonly ? ['ro'] : [])], ctx),
      () => helper(['unmount', proc, target], ctx).then(() => {}),
    );
    if (!spec.volume) ctx.store.tx(() => setMountSource(ctx.store, claimed.id, mounted.stdout.trim()));
    return {
      mount: listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id }).find((m) => m.id === claimed.id)!,
      changed: true,
    };
  });
}

/**
 * The guest's mount at a path as the operator typed it: mounts are recorded where the path led
 * inside the container when they were made, so a path through a symlink there is resolved again.
 */
export async function findMountAt(ctx: StorageContext, guest: Guest, path: string): Promise<MountRecord | undefined> {
  const mine = listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id });
  const typed = mine.find((m) => m.target === path);
  if (typed || !guest.pid) return typed;
  const resolved = (await helper(['prepare', guestProc(guest), path], ctx).catch(() => null))?.stdout.trim();
  return mine.find((m) => m.target === resolved);
}

/** Takes the mount out of a running guest (if it still runs) and forgets it. */
export async function unmountFrom(ctx: StorageContext, guest: Guest | null, mount: MountRecord): Promise<void> {
  if (guest?.pid) await helper(['unmount', guestProc(guest), mount.target], ctx);
  ctx.store.tx(() => deleteMount(ctx.store, mount.id));
}

/** mountinfo's octal escapes (a space is \040). */
const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Whether the guest's mount namespace has something mounted at `target` (its /proc/<pid>/mountinfo). */
function mountedIn(pid: number, target: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .some((l) => l && unescape(l.split(' ')[4]) === target);
  } catch {
    return false;
  }
}

/**
 * What a restore mounts from. A volume: its data dir, backed. A bind: the recorded path, which
 * the helper opens with no symlink followed and holds to the identity recorded at the first
 * mount; an older record without one gets the host-path policy again instead.
 */
async function restoreSource(ctx: StorageContext, m: MountRecord): Promise<string> {
  if (m.volume) {
    await ensureBacked(ctx, findVolume(ctx.store, m.volume)!);
    return volumePath(ctx, m.volume);
  }
  if (!m.sourceId) checkHostPolicy(m.hostPath, ctx.store.stateDir);
  return m.hostPath;
}

async function restoreOne(ctx: StorageContext, guest: Guest, proc: string, m: MountRecord): Promise<boolean> {
  const source = await restoreSource(ctx, m);
  // Older records hold the target as written: resolved here, and not stacked if mounted there.
  const target = (await helper(['prepare', proc, m.target, 'mkdir'], ctx)).stdout.trim();
  if (target !== m.target && mountedIn(guestPid(guest), target)) return false;
  const mounted = await helper(['mount', proc, source, target, m.sourceId ?? '-', ...(m.readonly ? ['ro'] : [])], ctx);
  if (!m.volume && !m.sourceId) ctx.store.tx(() => setMountSource(ctx.store, m.id, mounted.stdout.trim()));
  return true;
}

/**
 * Puts recorded mounts back into a guest that lost them (a restarted container); returns how
 * many. A source refused (no longer the object first mounted) is left out, the others are
 * restored, and one line then names what was refused.
 */
export async function restoreMounts(ctx: StorageContext, guest: Guest): Promise<number> {
  const pid = guestPid(guest);
  const proc = guestProc(guest);
  let restored = 0;
  const refused: string[] = [];
  for (const m of listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id })) {
    if (mountedIn(pid, m.target)) continue;
    try {
      if (await restoreOne(ctx, guest, proc, m)) restored++;
    } catch (err) {
      refused.push(`${m.target}: ${describe(err)}`);
    }
  }
  if (refused.length)
    throw new PipewrightError(`restored ${restored} mount(s) into ${guest.name}, not ${refused.join('; ')}`);
  return restored;
}
