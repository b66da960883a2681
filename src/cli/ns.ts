/** route / rule: iproute2's own words, run inside the guest's network namespace (as pipework does). */
import type { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { dockerSocket } from '../frontend/context.js';
import { optionsOf } from './context.js';

export async function runInGuest(
  object: 'route' | 'rule',
  guestSpec: string,
  args: string[],
  verbose?: boolean,
): Promise<string> {
  if (args.length === 0)
    throw new UsageError(`give the ${object} command, e.g. pipewright ${object} web add 10.0.0.0/8 via 192.168.1.254`);
  const { resolveGuest } = await import('../runtime/guest.js');
  const { ipCommand } = await import('../net/routes/iproute.js');
  const { stderrLog, silent } = await import('../util/log.js');
  const guest = await resolveGuest(guestSpec, dockerSocket());
  return ipCommand([object, ...args], guest.netnsPath, verbose ? stderrLog() : silent);
}

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
      .action(async (guestSpec: string, args: string[], _o, cmd: Command) => {
        const out = await runInGuest(object, guestSpec, args, optionsOf(cmd).verbose);
        if (out) process.stdout.write(out + '\n');
      });
  }
}
