/**
 * Networks: a bridge with a pool's subnet. The bridge gets the pool's gateway as its own address
 * (the guests' default route), and the network's choices (masquerade, isolation) become firewall
 * rules. Removing a network takes back what creating it added.
 */
import { removeHostAddress, setHostAddress } from '../kernel/addresses.js';
import { hostLinkExists, hostLinkInfo } from '../kernel/sysfs.js';
import { changeFirewallIn } from '../firewall/sync.js';
import { contains } from '../model/address.js';
import { checkIfname, checkObjectName } from '../model/validate.js';
import * as records from '../store/attachments.js';
import { withLock } from '../store/lock.js';
import { deleteNetwork, findNetwork, insertNetwork, type NetworkRecord } from '../store/networks.js';
import { PipewrightError } from '../util/errors.js';
import { UndoStack } from '../util/undo.js';
import { namedStep } from '../util/faults.js';
import type { CoreContext } from './context.js';
import { ensureBridge, releaseBridge } from './shared-links.js';

export interface NetworkRequest {
  name: string;
  bridge: string;
  pool: string;
  masquerade?: boolean;
  isolated?: boolean;
  /** A gateway the pool does not hold back itself (one Docker's IPAM chose): the bridge's address. */
  gateway?: string;
}

/**
 * Creates a network: its record, its bridge, the gateway on it. Under the host's `networks` lock,
 * so a `network rm` of the same network waits until it is whole (and a create, until it is gone).
 */
export function createNetwork(ctx: CoreContext, req: NetworkRequest): Promise<NetworkRecord> {
  return withLock(ctx.store.stateDir, 'networks', () => create(ctx, req));
}

async function create(ctx: CoreContext, req: NetworkRequest): Promise<NetworkRecord> {
  checkObjectName(req.name, 'network name');
  checkIfname(req.bridge, 'bridge');
  const pool = await ctx.ipam.pool(req.pool);
  if (pool.family !== 4) throw new PipewrightError(`pool ${pool.name} is IPv6; networks with NAT are IPv4 for now`);
  const gateway = req.gateway ?? pool.gateway;
  if (req.gateway && !contains(pool.subnet.split('/')[0], pool.prefix, req.gateway)) {
    throw new PipewrightError(`gateway ${req.gateway} is not in pool ${pool.name} (${pool.subnet})`);
  }
  const rec = {
    name: req.name,
    bridge: req.bridge,
    pool: pool.name,
    subnet: pool.subnet,
    gateway,
    masquerade: Boolean(req.masquerade),
    isolated: Boolean(req.isolated),
  };
  const clash = findNetwork(ctx.store, req.name) ?? findNetwork(ctx.store, req.bridge);
  // The same network again (a create that was killed after recording it, or a script re-run):
  // make sure of its bridge and gateway, and change nothing else.
  const resume = clash !== null && (['name', 'bridge', 'pool', 'masquerade', 'isolated'] as const).every((k) => clash[k] === rec[k]);
  if (clash && !resume) throw new PipewrightError(`network ${clash.name} already uses ${clash.name === req.name ? 'that name' : `bridge ${req.bridge}`}`);
  const existing = hostLinkInfo(req.bridge);
  if (existing && !existing.bridge) throw new PipewrightError(`${req.bridge} exists and is not a bridge`);
  const log = ctx.log;
  const undo = new UndoStack(log);
  const change = (mutate: () => void) => changeFirewallIn(ctx, mutate);
  return undo.all(async () => {
    // The record comes first: of two creates at once the store takes one, and the other stops
    // before it has touched the bridge (its rollback would take the winner's gateway away).
    if (!resume) {
      await undo.step(
        'record network and its firewall rules',
        () => change(() => insertUnique(ctx, rec)),
        () => change(() => deleteNetwork(ctx.store, req.name)).then(() => {}),
      );
    }
    await ensureBridge(ctx, undo, req.bridge);
    if (gateway) {
      const addr = `${gateway}/${pool.prefix}`;
      const gw = { address: gateway, prefix: pool.prefix, family: pool.family };
      await undo.step(
        `address ${addr} on ${req.bridge}`,
        () => {
          log?.step(`ip address replace ${addr} dev ${req.bridge}; ip link set ${req.bridge} up  (netlink)`);
          return setHostAddress(req.bridge, gw);
        },
        () => removeHostAddress(req.bridge, gw),
      );
    }
    return findNetwork(ctx.store, req.name)!;
  });
}

/** Inserts the network unless its name or bridge is taken (checked again inside the transaction). */
function insertUnique(ctx: CoreContext, rec: Omit<NetworkRecord, 'createdAt'>): void {
  const clash = findNetwork(ctx.store, rec.name) ?? findNetwork(ctx.store, rec.bridge);
  if (clash) throw new PipewrightError(`network ${clash.name} already uses ${clash.name === rec.name ? 'that name' : `bridge ${rec.bridge}`}`);
  insertNetwork(ctx.store, rec);
}

export function removeNetwork(ctx: CoreContext, name: string): Promise<NetworkRecord> {
  return withLock(ctx.store.stateDir, 'networks', () => remove(ctx, name));
}

async function remove(ctx: CoreContext, name: string): Promise<NetworkRecord> {
  const net = findNetwork(ctx.store, name);
  if (!net || net.name !== name) throw new PipewrightError(`no network named ${name} (see 'pipewright network ls')`);
  const guests = records.countOnHostIf(ctx.store, net.bridge);
  if (guests > 0) throw new PipewrightError(`network ${name} still has ${guests} guest(s) on ${net.bridge}; detach them first`);
  await namedStep(`network rm ${name}: firewall`, () => changeFirewallIn(ctx, () => deleteNetwork(ctx.store, name)));
  if (net.gateway && hostLinkExists(net.bridge)) {
    const prefix = Number(net.subnet.split('/')[1]);
    ctx.log?.step(`ip address del ${net.gateway}/${prefix} dev ${net.bridge}  (netlink)`);
    await namedStep(`network rm ${name}: address`, () => removeHostAddress(net.bridge, { address: net.gateway!, prefix, family: 4 }));
  }
  await namedStep(`network rm ${name}: bridge`, () => releaseBridge(ctx, net.bridge));
  return net;
}
