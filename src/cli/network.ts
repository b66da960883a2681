/** network / ports / firewall: the CLI face of networks, published ports and the firewall sync. */
import type { Command } from 'commander';
import { withContext } from '../frontend/context.js';
import { optionsOf, printJson, printTable } from './context.js';
import type { NetworkRecord } from '../db/networks.js';

/** A network as --json prints it: its host interface as `bridge` (a bridge, or a macvlan network's parent). */
function networkJson({ name, hostIf, ...rest }: NetworkRecord) {
  return { name, bridge: hostIf, ...rest };
}

export function register(program: Command): void {
  const network = program.command('network').description('bridges with a pool, NAT (masquerade) and isolation');
  network
    .command('create')
    .description("create a network: the bridge (if missing) gets the pool's gateway address")
    .argument('<name>', 'network name')
    .requiredOption('--bridge <br>', 'bridge (created if missing)')
    .requiredOption('--pool <pool>', 'pool whose subnet the network uses (IPv4)')
    .option('--pool6 <pool>', 'an IPv6 pool beside it (dual stack): guests get both, -p publishes on both')
    .option('--masquerade', 'source NAT for traffic leaving the subnet through another interface')
    .option('--isolated', 'drop traffic between this bridge and other pipewright bridges')
    .option('--json', 'print the network as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright pool create lan 10.10.0.0/24 && pipewright network create lan --bridge br-lan --pool lan --masquerade\n' +
        '  pipewright pool create lan6 fd00:10::/64 && pipewright network create dual --bridge br-dual --pool lan --pool6 lan6',
    )
    .action(async (name: string, _o, cmd: Command) => {
      const o = optionsOf<{ bridge: string; pool: string; pool6?: string; masquerade?: boolean; isolated?: boolean }>(
        cmd,
      );
      const { createNetwork } = await import('../ops/network.js');
      await withContext(o, async (ctx) => {
        const n = await createNetwork(ctx, {
          name,
          hostIf: o.bridge,
          pool: o.pool,
          pool6: o.pool6,
          masquerade: o.masquerade,
          isolated: o.isolated,
        });
        if (ctx.json) printJson(networkJson(n));
        else
          process.stdout.write(
            `network ${n.name}: ${n.hostIf} ${n.subnet} gateway ${n.gateway ?? 'none'}${n.subnet6 ? ` ${n.subnet6} gateway ${n.gateway6 ?? 'none'}` : ''}${n.masquerade ? ' masquerade' : ''}${n.isolated ? ' isolated' : ''}\n`,
          );
      });
    });
  network
    .command('ls')
    .description('list networks')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright network ls')
    .action(async (_o, cmd: Command) => {
      const { listNetworks } = await import('../db/networks.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        const nets = listNetworks(ctx.store);
        if (ctx.json) return printJson(nets.map(networkJson));
        printTable(
          ['NAME', 'KIND', 'BRIDGE/PARENT', 'SUBNET', 'GATEWAY', 'MASQUERADE', 'ISOLATED'],
          nets.map((n) => [
            n.name,
            n.kind,
            n.hostIf,
            n.subnet,
            n.gateway ?? '-',
            String(n.masquerade),
            String(n.isolated),
          ]),
        );
      });
    });
  network
    .command('rm')
    .description('remove a network (refused while guests are attached)')
    .argument('<name>', 'network name')
    .addHelpText('after', '\nExample:\n  pipewright network rm lan')
    .action(async (name: string, _o, cmd: Command) => {
      const { removeNetwork } = await import('../ops/network.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        await removeNetwork(ctx, name);
        process.stdout.write(`network ${name} removed\n`);
      });
    });

  program
    .command('ports')
    .description('list published ports, of one guest or all')
    .argument('[guest]', 'as for attach')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nA mapping published on both families is one row each; an IPv6 row for every address shows [::].\n\nExample:\n  pipewright ports web --json',
    )
    .action(async (guestSpec: string | undefined, _o, cmd: Command) =>
      (await import('./ports-run.js')).showPorts(guestSpec, optionsOf(cmd)),
    );

  const firewall = program.command('firewall').description("pipewright's firewall rules");
  firewall
    .command('sync')
    .description("rebuild pipewright's rules from the store (after a firewall reload or reboot); idempotent")
    .option('--json', 'print the rules as JSON')
    .addHelpText('after', '\nExample:\n  pipewright firewall sync --firewall iptables')
    .action(async (_o, cmd: Command) => {
      const { syncFirewall } = await import('../ops/firewall-sync.js');
      await withContext(optionsOf(cmd), async (ctx) => {
        const rules = await syncFirewall(ctx.store, { firewall: ctx.firewall, log: ctx.log });
        if (ctx.json) printJson(rules);
        else process.stdout.write(`firewall in sync: ${rules.length} rule(s)\n`);
      });
    });
}
