/** pool / lease / gc: the CLI face of src/ipam and src/ops/gc.ts. */
import type { Command } from 'commander';
import { PipewrightError, UsageError } from '../util/errors.js';
import type { Lease } from '../net/ipam/backend.js';
import { withContext } from '../frontend/context.js';
import { collect, optionsOf, printJson, printTable } from './context.js';

function leaseRows(leases: Lease[]): string[][] {
  return leases.map((l) => [l.pool, l.address, l.owner, l.host, l.reserved ? 'reserved' : 'lease', l.createdAt]);
}

function registerPool(program: Command): void {
  const pool = program.command('pool').description('address pools that attach hands addresses out from (pool:<name>)');
  pool
    .command('create')
    .description('create a pool; overlapping pools are refused')
    .argument('<name>', 'pool name')
    .argument('<cidr>', 'subnet, e.g. 10.10.0.0/16 or fd10::/64')
    .option('--gateway <ip>', 'gateway (default: the first host address)')
    .option('--no-gateway', 'no gateway: attach sets no default route')
    .option('--range <start-end>', 'hand out only this range of the subnet')
    .option('--exclude <ip|cidr>', 'never hand out this address or range (repeatable)', collect, [])
    .option('--label <k=v>', 'label (repeatable)', collect, [])
    .option('--json', 'print the pool as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  pipewright pool create lan 10.10.0.0/16 --gateway 10.10.0.1 --exclude 10.10.0.0/24 --label env=test',
    )
    .action(async (name: string, cidr: string, _o, cmd: Command) => {
      const o = optionsOf<{ gateway?: string | false; range?: string; exclude: string[]; label: string[] }>(cmd);
      await withContext(o, async (ctx) => {
        const p = await ctx.ipam.createPool({
          name,
          cidr,
          range: o.range,
          exclude: o.exclude,
          labels: o.label,
          gateway: o.gateway || undefined,
          noGateway: o.gateway === false,
        });
        if (ctx.json) printJson(p);
        else
          process.stdout.write(
            `pool ${p.name}: ${p.subnet}, range ${p.rangeStart}-${p.rangeEnd}, gateway ${p.gateway ?? 'none'}\n`,
          );
      });
    });
  pool
    .command('ls')
    .description('list pools with their use')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright pool ls --json')
    .action(async (_o, cmd: Command) => {
      await withContext(optionsOf(cmd), async (ctx) => {
        const pools = await ctx.ipam.listPools();
        const leases = await ctx.ipam.leases();
        const used = (n: string) => leases.filter((l) => l.pool === n).length;
        if (ctx.json) return printJson(pools.map((p) => ({ ...p, leases: used(p.name) })));
        printTable(
          ['NAME', 'SUBNET', 'RANGE', 'GATEWAY', 'LEASES'],
          pools.map((p) => [p.name, p.subnet, `${p.rangeStart}-${p.rangeEnd}`, p.gateway ?? '-', String(used(p.name))]),
        );
      });
    });
  pool
    .command('inspect')
    .description('show a pool and its leases')
    .argument('<name>', 'pool name')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright pool inspect lan')
    .action(async (name: string, _o, cmd: Command) => {
      await withContext(optionsOf(cmd), async (ctx) => {
        const p = await ctx.ipam.pool(name);
        const leases = await ctx.ipam.leases({ pool: name });
        if (ctx.json) return printJson({ ...p, leases });
        process.stdout.write(
          `${p.name}: ${p.subnet} range ${p.rangeStart}-${p.rangeEnd} gateway ${p.gateway ?? 'none'}` +
            `${p.exclude.length ? ` exclude ${p.exclude.join(',')}` : ''} labels ${JSON.stringify(p.labels)}\n`,
        );
        printTable(['POOL', 'ADDRESS', 'OWNER', 'HOST', 'KIND', 'SINCE'], leaseRows(leases));
      });
    });
  pool
    .command('rm')
    .description('remove a pool (refused while it has leases, unless --force)')
    .argument('<name>', 'pool name')
    .option('--force', 'remove it with its leases')
    .addHelpText('after', '\nExample:\n  pipewright pool rm lan')
    .action(async (name: string, _o, cmd: Command) => {
      const o = optionsOf<{ force?: boolean }>(cmd);
      await withContext(o, async (ctx) => {
        await ctx.ipam.removePool(name, o.force);
        process.stdout.write(`pool ${name} removed\n`);
      });
    });
}

function registerLease(program: Command): void {
  const lease = program.command('lease').description('address leases: list, pin for outside users, release');
  lease
    .command('ls')
    .description('list leases')
    .option('--pool <name>', 'only this pool')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright lease ls --pool lan')
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ pool?: string }>(cmd);
      await withContext(o, async (ctx) => {
        const leases = await ctx.ipam.leases({ pool: o.pool });
        if (ctx.json) return printJson(leases);
        printTable(['POOL', 'ADDRESS', 'OWNER', 'HOST', 'KIND', 'SINCE'], leaseRows(leases));
      });
    });
  lease
    .command('reserve')
    .description('pin an address (or the next free one) for something outside pipewright; gc leaves it alone')
    .argument('<pool>', 'pool name')
    .argument('[ip]', 'address in the pool (default: the next free one)')
    .requiredOption('--owner <text>', 'who uses it')
    .option('--json', 'print the lease as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright lease reserve lan 10.10.0.50 --owner "printer in room 2"\n  pipewright lease reserve lan --owner vm-7 --json',
    )
    .action(async (pool: string, ip: string | undefined, _o, cmd: Command) => {
      const o = optionsOf<{ owner: string }>(cmd);
      await withContext(o, async (ctx) => {
        const l = ip ? await ctx.ipam.claim(pool, ip, o.owner, true) : await ctx.ipam.allocate(pool, o.owner, true);
        if (ctx.json) printJson(l);
        else process.stdout.write(`${l.address} reserved in ${l.pool} for ${l.owner}\n`);
      });
    });
  lease
    .command('release')
    .description('release one address, or every lease of an owner')
    .argument('[pool]', 'pool name')
    .argument('[ip]', 'address')
    .option('--owner <text>', 'release every lease of this owner instead')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright lease release lan 10.10.0.50\n  pipewright lease release --owner "printer in room 2"',
    )
    .action(async (pool: string | undefined, ip: string | undefined, _o, cmd: Command) => {
      const o = optionsOf<{ owner?: string }>(cmd);
      if (!o.owner && !(pool && ip)) throw new UsageError('give <pool> <ip>, or --owner <text>');
      await withContext(o, async (ctx) => {
        const gone = o.owner
          ? await ctx.ipam.releaseOwner(o.owner)
          : [await ctx.ipam.release(pool!, ip!, 'anyone')].filter((l): l is Lease => l !== null);
        if (gone.length === 0)
          throw new PipewrightError(o.owner ? `no lease is held by ${o.owner}` : `${ip} is not leased in pool ${pool}`);
        for (const l of gone) process.stdout.write(`${l.address} released from ${l.pool}\n`);
      });
    });
}

export function register(program: Command): void {
  registerPool(program);
  registerLease(program);
  program
    .command('gc')
    .description('undo attachments whose guest is gone (or whose attach was killed) and release orphaned leases')
    .option('--dry-run', 'only say what would be done')
    .option('--json', 'print the actions as JSON')
    .addHelpText('after', '\nExample:\n  pipewright gc --dry-run')
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ dryRun?: boolean }>(cmd);
      const { gc } = await import('../ops/gc.js');
      await withContext(o, async (ctx) => {
        const actions = await gc(ctx, { dryRun: o.dryRun });
        if (ctx.json) return printJson(actions);
        const verb = o.dryRun ? 'would remove' : 'removed';
        for (const a of actions) process.stdout.write(`${verb} ${a.kind} ${a.target}: ${a.reason}\n`);
        if (actions.length === 0) process.stdout.write('nothing to collect\n');
      });
    });
}
