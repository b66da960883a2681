/** `pipewright pipework ...`: pipework's argv (what it does: pipework-run.ts, also the `pipework` bin's). */
import type { Command } from 'commander';
import { optionsOf } from './context.js';

export function register(program: Command): void {
  program
    .command('pipework')
    .description("accept pipework's command lines unchanged (default container interface eth1, as pipework)")
    .argument('<args...>', 'pipework arguments')
    .allowUnknownOption()
    .addHelpText(
      'after',
      `
Examples:
  pipewright pipework br1 web 192.168.1.5/24@192.168.1.1
  pipewright pipework eth2 -i eth1 web 10.0.0.5/24 26:2e:71:98:60:8f
  pipewright pipework eth2 web 10.0.10.5/24 @10          a macvlan of eth2.10 (VLAN 10, made if missing)
  pipewright pipework br1 -l vethweb web dhcp
  pipewright pipework route web add 10.0.0.0/8 via 192.168.1.254`,
    )
    .action(async (args: string[], _o, cmd: Command) =>
      (await import('./pipework-run.js')).runPipework(args, optionsOf(cmd)),
    );
}
