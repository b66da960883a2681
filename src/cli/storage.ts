/** volume / mount / unmount: the CLI face of src/storage. */
import type { Command } from 'commander';
import type * as Readline from 'node:readline/promises';
import { loadBuiltin } from '../util/builtin.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { dockerSocket, withContext } from '../frontend/context.js';
import { collect, optionsOf, printJson, printTable } from './context.js';

/** `--filter label=k=v` -> `k=v` (the only filter volumes have). */
function labelFilters(filters: string[]): string[] {
  return filters.map((f) => {
    if (!f.startsWith('label=')) throw new UsageError(`filter "${f}" must be label=<key>=<value>`);
    return f.slice('label='.length);
  });
}

function registerVolume(program: Command): void {
  const volume = program.command('volume').description('named volumes: host directories pipewright places and names');
  volume
    .command('create')
    .description('create a named volume (a directory, a tmpfs, a bind of another path, or an image with a quota)')
    .argument('<name>', "volume name (Docker's rule)")
    .option('--label <k=v>', 'label (repeatable)', collect, [])
    .option('--opt <k=v[,k=v]>', 'type=tmpfs,o=size=64m | type=none,o=bind,device=/path (repeatable)', collect, [])
    .option('--size <size>', 'an ext4 image of this size on a loop device: a hard quota (e.g. 1G)')
    .option('--json', 'print the volume as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright volume create data --label app=web\n  pipewright volume create scratch --opt type=tmpfs,o=size=64m\n  pipewright volume create capped --size 1G',
    )
    .action(async (name: string, _o, cmd: Command) => {
      const o = optionsOf<{ label: string[]; opt: string[]; size?: string }>(cmd);
      const { parseVolumeOpts } = await import('../storage/spec.js');
      const options = parseVolumeOpts(o.opt, o.size);
      const { createVolume, inspectVolume } = await import('../storage/volumes.js');
      await withContext(o, async (ctx) => {
        const v = await createVolume(ctx, name, options, o.label);
        if (ctx.json) printJson(await inspectVolume(ctx, v));
        else process.stdout.write(`${v.name}\n`);
      });
    });
  volume
    .command('ls')
    .description('list volumes and who uses them')
    .option('--filter <label=k=v>', 'only volumes with this label (repeatable)', collect, [])
    .option('--json', 'print as JSON (the inspect fields)')
    .addHelpText('after', '\nExample:\n  pipewright volume ls --filter label=app=web')
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ filter: string[] }>(cmd);
      const { listVolumes, listMounts } = await import('../db/volumes.js');
      const { inspectVolume } = await import('../storage/volumes.js');
      const { matchesLabels } = await import('../util/labels.js');
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
    });
  volume
    .command('inspect')
    .description("show volumes with Docker's inspect fields (JSON)")
    .argument('<name...>', 'volume names')
    .addHelpText('after', '\nExample:\n  pipewright volume inspect data')
    .action(async (names: string[], _o, cmd: Command) => {
      const { getVolume, inspectVolume } = await import('../storage/volumes.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        printJson(await Promise.all(names.map((n) => inspectVolume(ctx, getVolume(ctx, n)))));
      });
    });
  volume
    .command('rm')
    .description('remove volumes and their data (refused while mounted)')
    .argument('<name...>', 'volume names')
    .option('-f, --force', 'no error for volumes that do not exist')
    .addHelpText('after', '\nExample:\n  pipewright volume rm data')
    .action(async (names: string[], _o, cmd: Command) => {
      const o = optionsOf<{ force?: boolean }>(cmd);
      const { removeVolume } = await import('../storage/volumes.js');
      const { findVolume } = await import('../db/volumes.js');
      await withContext(o, async (ctx) => {
        for (const n of names) {
          if (o.force && !findVolume(ctx.store, n)) continue;
          await removeVolume(ctx, n);
          process.stdout.write(`${n}\n`);
        }
      });
    });
  volume
    .command('prune')
    .description('remove every volume no guest uses')
    .option('--filter <label=k=v>', 'only volumes with this label (repeatable)', collect, [])
    .option('-f, --force', 'do not ask')
    .option('--json', 'print the removed names as JSON')
    .addHelpText('after', '\nExample:\n  pipewright volume prune --filter label=env=test --force')
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ filter: string[]; force?: boolean }>(cmd);
      if (!o.force) await confirm('This removes every volume no guest uses, with its data. Continue? [y/N] ');
      const { pruneVolumes } = await import('../storage/volumes.js');
      await withContext(o, async (ctx) => {
        const removed = await pruneVolumes(ctx, labelFilters(o.filter));
        if (ctx.json) return printJson(removed);
        process.stdout.write(removed.map((n) => `${n}\n`).join('') + `removed ${removed.length} volume(s)\n`);
      });
    });
  volume
    .command('path')
    .description("print a volume's host directory (for docker run -v $(pipewright volume path data):/data)")
    .argument('<name>', 'volume name')
    .addHelpText('after', '\nExample:\n  docker run -v "$(pipewright volume path data)":/data busybox ls /data')
    .action(async (name: string, _o, cmd: Command) => {
      const { getVolume, ensureBacked, dataDir } = await import('../storage/volumes.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        const v = getVolume(ctx, name);
        await ensureBacked(ctx, v);
        process.stdout.write(`${dataDir(ctx.store.stateDir, v.name)}\n`);
      });
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

export function register(program: Command): void {
  registerVolume(program);
  program
    .command('mount')
    .description('mount a named volume or a host path into a running container, without restarting it')
    .argument('<guest>', 'docker:<name|id> | pid:<n> | <name> (a guest with a mount namespace)')
    .argument('<spec>', '<volume-name|/host/path>:<container-path>[:ro|nocopy]')
    .option('--create', 'create a missing host path')
    .option('--allow-sensitive', 'allow /, /proc, /sys, /dev and the state directory as host paths')
    .option('--json', 'print the mount as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright mount web data:/data\n  pipewright mount web /srv/config:/etc/app:ro',
    )
    .action(async (guestSpec: string, specText: string, _o, cmd: Command) => {
      const o = optionsOf<{ create?: boolean; allowSensitive?: boolean }>(cmd);
      const { parseMountSpec } = await import('../storage/spec.js');
      const spec = parseMountSpec(specText);
      const { resolveGuest } = await import('../runtime/guest.js');
      const guest = await resolveGuest(guestSpec, dockerSocket());
      const { mountInto } = await import('../storage/mount.js');
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
    });
  program
    .command('unmount')
    .description('take a mount out of a running container')
    .argument('<guest>', 'as for mount')
    .argument('<container-path>', 'where it is mounted')
    .addHelpText('after', '\nExample:\n  pipewright unmount web /data')
    .action(async (guestSpec: string, target: string, _o, cmd: Command) => {
      const { checkContainerPath } = await import('../storage/spec.js');
      const path = checkContainerPath(target);
      const { findMountAt, unmountFrom } = await import('../storage/mount.js');
      const { listMounts } = await import('../db/volumes.js');
      const { resolveGuest } = await import('../runtime/guest.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        const guest = await resolveGuest(guestSpec, dockerSocket()).catch(() => null);
        const m = guest
          ? await findMountAt(ctx, guest, path)
          : listMounts(ctx.store).find((x) => x.target === path && x.guestName === guestSpec);
        if (!m)
          throw new PipewrightError(`pipewright has no mount at ${path} in ${guestSpec} (see 'pipewright volume ls')`);
        await unmountFrom(ctx, guest, m);
        process.stdout.write(`${m.guestName}: ${path} unmounted\n`);
      });
    });
}
