/** What route and rule do (passthrough.ts declares them): iproute2's words inside the guest's network namespace. */
import { dockerSocket } from '../frontend/context.js';
import { ipCommand } from '../net/routes/iproute.js';
import { resolveGuest } from '../runtime/guest.js';
import { UsageError } from '../util/errors.js';
import { silent, stderrLog } from '../util/log.js';

export async function runInGuest(
  object: 'route' | 'rule',
  guestSpec: string,
  args: string[],
  verbose?: boolean,
): Promise<string> {
  if (args.length === 0)
    throw new UsageError(`give the ${object} command, e.g. pipewright ${object} web add 10.0.0.0/8 via 192.168.1.254`);
  const guest = await resolveGuest(guestSpec, dockerSocket());
  return ipCommand([object, ...args], guest.netnsPath, verbose ? stderrLog() : silent);
}

/** The command: its output (ip's own) on stdout. */
export async function routeOrRule(object: 'route' | 'rule', guestSpec: string, args: string[], verbose?: boolean) {
  const out = await runInGuest(object, guestSpec, args, verbose);
  if (out) process.stdout.write(out + '\n');
}
