/** route / rule: iproute2's own words, run inside the guest's network namespace (as pipework does; passthrough-run.ts). */
import type { Command } from 'commander';
import { optionsOf } from './context.js';

export function register(program: Command): void {
  for (const object of ['route', 'rule'] as const) {
    program
      .command(object)
      .description(`run "ip ${object} ..." inside the guest's network namespace`)
      .argument('<guest>', 'as for attach')
      .argument('<args...>', `arguments of ip ${object}`)
      .allowUnknownOption()
      .helpOption('-h, --help', 'display help for command')
      .addHelpText(
        'after',
        `\nExample:\n  pipewright ${object} web ${object === 'route' ? 'add 10.0.0.0/8 via 192.168.1.254' : 'add from 10.0.0.5 table 100'}`,
      )
      .action(async (guestSpec: string, args: string[], _o, cmd: Command) =>
        (await import('./passthrough-run.js')).routeOrRule(object, guestSpec, args, optionsOf(cmd).verbose),
      );
  }
}
