/**
 * Mounting into a running guest, without restarting it and without any tool in its image: the
 * native helper (native/pipewright-mount.c) clones the host directory as a detached mount, enters
 * the guest's mount namespace and moves it onto the target. Every mount is recorded, so volumes in
 * use cannot be removed and `volume ls` shows their users.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { shipped } from '../util/paths.js';
import { PipewrightError } from '../util/errors.js';
import { run } from '../util/exec.js';
import type { Guest } from '../runtime/guest.js';
import { deleteMount, findVolume, insertMount, listMounts, type MountRecord } from '../store/volumes.js';
import { UndoStack } from '../util/undo.js';
import { checkHostPath } from './host-path.js';
import type { MountSpec } from './spec.js';
import { dataDir, ensureBacked, isEmptyDir, volumeFor, type StorageContext } from './volumes.js';

function helper(args: string[], ctx: StorageContext) {
  return run(shipped('dist/pipewright-mount'), args, { log: ctx.log });
}

export interface MountOptions {
  /** Create a missing bind-mount source directory. */
  create?: boolean;
  allowSensitive?: boolean;
}

function guestPid(guest: Guest): number {
  if (!guest.pid) throw new PipewrightError(`${guest.name} is a bare network namespace; mounts need a container or a process (docker:<name>, pid:<n>)`);
  return guest.pid;
}

/**
 * The host directory a mount spec names (a named volume is created on first use, as Docker does,
 * and its backing mounted); `fresh`: an empty named volume, which takes the target's content.
 */
export async function mountSource(ctx: StorageContext, spec: MountSpec, opts: MountOptions): Promise<{ path: string; fresh: boolean }> {
  if (spec.volume) {
    const v = await volumeFor(ctx, spec.volume);
    await ensureBacked(ctx, v);
    const path = dataDir(ctx.store.stateDir, v.name);
    return { path, fresh: isEmptyDir(path) };
  }
  if (opts.create) mkdirSync(spec.hostPath!, { recursive: true });
  return { path: checkHostPath(spec.hostPath!, ctx.store.stateDir, { allowSensitive: opts.allowSensitive }), fresh: false };
}

export async function mountInto(
  ctx: StorageContext,
  guest: Guest,
  spec: MountSpec,
  opts: MountOptions = {},
): Promise<{ mount: MountRecord; changed: boolean }> {
  const pid = guestPid(guest);
  const same = listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id }).find((m) => m.target === spec.target);
  const source = await mountSource(ctx, spec, opts);
  if (same) {
    if (same.hostPath === source.path && same.readonly === spec.readonly) return { mount: same, changed: false };
    throw new PipewrightError(`${guest.name} already has ${same.volume ?? same.hostPath} mounted at ${spec.target}; unmount it first`);
  }
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    // Resolved inside the container: its symlinks can never point us at a host path.
    const target = (
      await undo.step(`prepare ${spec.target} in ${guest.name}`, () => helper(['prepare', String(pid), spec.target, 'mkdir'], ctx))
    ).stdout.trim();
    // Docker's copy-up: a fresh named volume takes the image's content at that path. The helper
    // reads it from inside the container, so no symlink there can make it copy a host path.
    if (spec.volume && source.fresh && !spec.nocopy) {
      await undo.step(`copy ${target} of ${guest.name} into the volume`, () => helper(['copyup', String(pid), target, source.path], ctx));
    }
    await undo.step(
      `mount ${source.path} at ${target} in ${guest.name}`,
      () => helper(['mount', String(pid), source.path, target, ...(spec.readonly ? ['ro'] : [])], ctx),
      () => helper(['unmount', String(pid), target], ctx).then(() => {}),
    );
    const id = ctx.store.tx(() =>
      insertMount(ctx.store, {
        volume: spec.volume,
        hostPath: source.path,
        guestKind: guest.kind,
        guestId: guest.id,
        guestName: guest.name,
        target: spec.target,
        readonly: spec.readonly,
      }),
    );
    return { mount: listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id }).find((m) => m.id === id)!, changed: true };
  });
}

/** Takes the mount out of a running guest (if it still runs) and forgets it. */
export async function unmountFrom(ctx: StorageContext, guest: Guest | null, mount: MountRecord): Promise<void> {
  if (guest?.pid) await helper(['unmount', String(guest.pid), mount.target], ctx);
  ctx.store.tx(() => deleteMount(ctx.store, mount.id));
}

/** Whether the guest's mount namespace has something mounted at `target` (its /proc/<pid>/mountinfo). */
function mountedIn(pid: number, target: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === target);
  } catch {
    return false;
  }
}

/** Puts recorded mounts back into a guest that lost them (a restarted container); returns how many. */
export async function restoreMounts(ctx: StorageContext, guest: Guest): Promise<number> {
  const pid = guestPid(guest);
  let restored = 0;
  for (const m of listMounts(ctx.store, { guestKind: guest.kind, guestId: guest.id })) {
    if (mountedIn(pid, m.target)) continue;
    if (m.volume) await ensureBacked(ctx, findVolume(ctx.store, m.volume)!);
    const target = (await helper(['prepare', String(pid), m.target, 'mkdir'], ctx)).stdout.trim();
    await helper(['mount', String(pid), m.hostPath, target, ...(m.readonly ? ['ro'] : [])], ctx);
    restored++;
  }
  return restored;
}
