/** volume / mount / unmount: the CLI face of src/storage (what each does: storage-run.ts). */
import type { Command } from 'commander';
import { collect, optionsOf } from './context.js';

/** Each command's one lazy load: what it does, with all it needs. */
const run = () => import('./storage-run.js');

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
    .action(async (name: string, _o, cmd: Command) => (await run()).volumeCreate(name, optionsOf(cmd)));
  volume
    .command('ls')
    .description('list volumes and who uses them')
    .option('--filter <label=k=v>', 'only volumes with this label (repeatable)', collect, [])
    .option('--json', 'print as JSON (the inspect fields)')
    .addHelpText('after', '\nExample:\n  pipewright volume ls --filter label=app=web')
    .action(async (_o, cmd: Command) => (await run()).volumeList(optionsOf(cmd)));
  volume
    .command('inspect')
    .description("show volumes with Docker's inspect fields (JSON)")
    .argument('<name...>', 'volume names')
    .addHelpText('after', '\nExample:\n  pipewright volume inspect data')
    .action(async (names: string[], _o, cmd: Command) => (await run()).volumeInspect(names, optionsOf(cmd)));
  volume
    .command('rm')
    .description('remove volumes and their data (refused while mounted)')
    .argument('<name...>', 'volume names')
    .option('-f, --force', 'no error for volumes that do not exist')
    .addHelpText('after', '\nExample:\n  pipewright volume rm data')
    .action(async (names: string[], _o, cmd: Command) => (await run()).volumeRemove(names, optionsOf(cmd)));
  volume
    .command('prune')
    .description('remove every volume no guest uses')
    .option('--filter <label=k=v>', 'only volumes with this label (repeatable)', collect, [])
    .option('-f, --force', 'do not ask')
    .option('--json', 'print the removed names as JSON')
    .addHelpText('after', '\nExample:\n  pipewright volume prune --filter label=env=test --force')
    .action(async (_o, cmd: Command) => (await run()).volumePrune(optionsOf(cmd)));
  volume
    .command('path')
    .description("print a volume's host directory (for docker run -v $(pipewright volume path data):/data)")
    .argument('<name>', 'volume name')
    .addHelpText('after', '\nExample:\n  docker run -v "$(pipewright volume path data)":/data busybox ls /data')
    .action(async (name: string, _o, cmd: Command) => (await run()).volumePath(name, optionsOf(cmd)));
}

export function register(program: Command): void {
  registerVolume(program);
  program
    .command('mount')
    .description('mount a named volume or a host path into a running container, without restarting it')
    .argument('<guest>', 'docker:<name|id> | pid:<n> | <name> (a guest with a mount namespace)')
    .argument('<spec>', '<volume-name|/host/path>:<guest-path>[:ro|nocopy]')
    .option('--create', 'create a missing host path')
    .option('--allow-sensitive', 'allow /, /proc, /sys, /dev and the state directory as host paths')
    .option('--json', 'print the mount as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright mount web data:/data\n  pipewright mount web /srv/config:/etc/app:ro',
    )
    .action(async (guestSpec: string, specText: string, _o, cmd: Command) =>
      (await run()).mount(guestSpec, specText, optionsOf(cmd)),
    );
  program
    .command('unmount')
    .description('take a mount out of a running container')
    .argument('<guest>', 'as for mount')
    .argument('<guest-path>', 'where it is mounted')
    .addHelpText('after', '\nExample:\n  pipewright unmount web /data')
    .action(async (guestSpec: string, target: string, _o, cmd: Command) =>
      (await run()).unmount(guestSpec, target, optionsOf(cmd)),
    );
}
