/**
 * What the volume, mount and unmount commands do, loaded once a command of them runs: the one
 * lazy-load point of each (storage.ts declares the commands, their options and help).
 */
import type * as Readline from 'node:readline/promises';
import { findVolume, listMounts, listVolumes } from '../db/volumes.js';
import { dockerSocket, withContext, type GlobalOptions } from '../frontend/context.js';
import { resolveGuest } from '../runtime/guest.js';
import { findMountAt, mountInto, unmountFrom } from '../storage/mount.js';
import { checkContainerPath, parseMountSpec, parseVolumeOpts } from '../storage/spec.js';
import {
  createVolume,
  dataDir,
  ensureBacked,
  getVolume,
  inspectVolume,
  pruneVolumes,
  removeVolume,
} from '../storage/volumes.js';
import { loadBuiltin } from '../util/builtin.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { matchesLabels } from '../util/labels.js';
import { printJson, printTable } from './context.js';

type Opts<T = object> = T & GlobalOptions;

/** `--filter label=k=v` -> `k=v` (the only filter volumes have). */
function labelFilters(filters: string[]): string[] {
  return filters.map((f) => {
    if (!f.startsWith('label=')) throw new UsageError(`filter "${f}" must be label=<key>=<value>`);
    return f.slice('label='.length);
  });
}

export async function volumeCreate(name: string, o: Opts<{ label: string[]; opt: string[]; size?: string }>) {
  const options = parseVolumeOpts(o.opt, o.size);
  await withContext(o, async (ctx) => {
    const v = await createVolume(ctx, name, options, o.label);
    if (ctx.json) printJson(await inspectVolume(ctx, v));
    else process.stdout.write(`${v.name}\n`);
  });
}

export async function volumeList(o: Opts<{ filter: string[] }>) {
  await withContext(o, async (ctx) => {
    const vols = listVolumes(ctx.store).filter((v) => matchesLabels(v.labels, labelFilters(o.filter)));
    if (ctx.json) return printJson(await Promise.all(vols.map((v) => inspectVolume(ctx, v))));
    printTable(
      ['DRIVER', 'VOLUME NAME', 'USED BY'],
      vols.map((v) => [
        'local',
        v.name,
        listMounts(ctx.store, { volume: v.name })
          .map((m) => `${m.guestName}:${m.target}`)
          .join(',') || '-',
      ]),
    );
  });
}

export async function volumeInspect(names: string[], o: Opts) {
  await withContext(o, async (ctx) => {
    printJson(await Promise.all(names.map((n) => inspectVolume(ctx, getVolume(ctx, n)))));
  });
}

export async function volumeRemove(names: string[], o: Opts<{ force?: boolean }>) {
  await withContext(o, async (ctx) => {
    for (const n of names) {
      if (o.force && !findVolume(ctx.store, n)) continue;
      await removeVolume(ctx, n);
      process.stdout.write(`${n}\n`);
    }
  });
}

export async function volumePrune(o: Opts<{ filter: string[]; force?: boolean }>) {
  if (!o.force) await confirm('This removes every volume no guest uses, with its data. Continue? [y/N] ');
  await withContext(o, async (ctx) => {
    const removed = await pruneVolumes(ctx, labelFilters(o.filter));
    if (ctx.json) return printJson(removed);
    process.stdout.write(removed.map((n) => `${n}\n`).join('') + `removed ${removed.length} volume(s)\n`);
  });
}

export async function volumePath(name: string, o: Opts) {
  await withContext(o, async (ctx) => {
    const v = getVolume(ctx, name);
    await ensureBacked(ctx, v);
    process.stdout.write(`${dataDir(ctx.store.stateDir, v.name)}\n`);
  });
}

async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) throw new UsageError('not asking without a terminal: add --force');
  const { createInterface } = loadBuiltin<typeof Readline>('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(question);
  rl.close();
  if (!/^y(es)?$/i.test(answer.trim())) throw new PipewrightError('nothing removed');
}

export async function mount(
  guestSpec: string,
  specText: string,
  o: Opts<{ create?: boolean; allowSensitive?: boolean }>,
) {
  const spec = parseMountSpec(specText);
  const guest = await resolveGuest(guestSpec, dockerSocket());
  await withContext(o, async (ctx) => {
    const res = await mountInto(ctx, guest, spec, o);
    if (ctx.json) printJson({ ...res.mount, changed: res.changed });
    else
      process.stdout.write(
        res.changed
          ? `${guest.name}: ${res.mount.hostPath} mounted at ${res.mount.target}${res.mount.readonly ? ' (ro)' : ''}\n`
          : `${guest.name}: already mounted, nothing changed\n`,
      );
  });
}

export async function unmount(guestSpec: string, target: string, o: Opts) {
  const path = checkContainerPath(target);
  await withContext(o, async (ctx) => {
    const guest = await resolveGuest(guestSpec, dockerSocket()).catch(() => null);
    const m = guest
      ? await findMountAt(ctx, guest, path)
      : listMounts(ctx.store).find((x) => x.target === path && x.guestName === guestSpec);
    if (!m)
      throw new PipewrightError(`pipewright has no mount at ${path} in ${guestSpec} (see 'pipewright volume ls')`);
    await unmountFrom(ctx, guest, m);
    process.stdout.write(`${m.guestName}: ${path} unmounted\n`);
  });
}
