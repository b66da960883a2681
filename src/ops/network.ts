/**
 * Networks: a pool's subnet on a host interface, of two kinds.
 *   bridge   the bridge gets the pool's gateway as its own address (the guests' default route), and
 *            the network's choices (masquerade, isolation) become firewall rules;
 *   macvlan  guests are macvlans of a parent NIC, on its LAN (the gateway is the LAN's router); the
 *            host reaches them through a shim with an address of its own, when one is given.
 * A macvlan network on a VLAN hangs its links off the NIC's VLAN interface (<nic>.<id>),
 * made when missing. Removing a network takes back what creating it added.
 */
import { formatRates, parseRates } from '../model/rate.js';
import { removeHostAddress, setHostAddress } from '../net/addresses/addresses.js';
import { ARPHRD_ETHER, hostLinkExists, hostLinkInfo } from '../net/link-state/sysfs.js';
import { changeFirewallIn } from './firewall-sync.js';
import { refuseForwardDrop } from './forward-drop.js';
import { contains, parseCidr, parseIpConfig, type IpConfig } from '../model/address.js';
import { NO_HOST_IF } from '../model/attachment.js';
import { shimName, vlanInterfaceName } from '../model/host-names.js';
import { checkIfname, checkMtu, checkObjectName, checkVlanId, type MacvlanMode } from '../model/validate.js';
import * as records from '../db/attachments.js';
import { withLock } from '../db/lock.js';
import { deleteNetwork, findNetwork, insertNetwork, type NetworkKind, type NetworkRecord } from '../db/networks.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { UndoStack } from '../util/undo.js';
import { namedStep } from '../util/faults.js';
import type { CoreContext } from './context.js';
import {
  ensureBridge,
  ensureShim,
  ensureVlanInterface,
  releaseBridge,
  releaseShim,
  releaseVlanInterface,
} from './shared-links.js';

export interface NetworkRequest {
  name: string;
  /** bridge (the default) or macvlan. */
  kind?: NetworkKind;
  /** The bridge (made if missing), or a macvlan network's parent NIC. */
  hostIf: string;
  pool: string;
  masquerade?: boolean;
  isolated?: boolean;
  /** A gateway the pool does not hold back itself (one Docker's IPAM chose): the bridge's address. */
  gateway?: string;
  /** An IPv6 pool beside the IPv4 one (dual stack), and its gateway as for `gateway`. */
  pool6?: string;
  gateway6?: string;
  /** The MTU of the network's links (default: the host interface's). */
  mtu?: number;
  macvlanMode?: MacvlanMode;
  /** "ip/len": the host's own address among a macvlan network's guests, on the parent's shim. */
  hostShim?: string;
  /** The links hang off VLAN <vlan> of the parent NIC (<nic>.<id>, made when missing). */
  vlan?: number;
  /** Each Docker endpoint's bandwidth limits, `<ingress>[/<egress>]` (a bridge network's veths only). */
  rate?: string;
}

/** What a macvlan network needs of its request: an Ethernet parent, no NAT choices, an MTU it can carry. */
function checkMacvlanRequest(req: Omit<NetworkRequest, 'pool'>): IpConfig | null {
  const parent = hostLinkInfo(req.hostIf);
  if (!parent || parent.type !== ARPHRD_ETHER || parent.bridge) {
    throw new PipewrightError(
      `parent ${req.hostIf} must be an existing Ethernet interface (not a bridge) for a macvlan network`,
    );
  }
  if (req.masquerade || req.isolated)
    throw new PipewrightError(
      `a macvlan network has no NAT and no isolation: its guests are on the LAN of their parent`,
    );
  if (req.mtu && req.mtu > parent.mtu)
    throw new PipewrightError(
      `mtu ${req.mtu} is above ${req.hostIf}'s own (${parent.mtu}); a macvlan cannot carry more than its parent`,
    );
  if (req.vlan !== undefined) vlanInterfaceName(req.hostIf, checkVlanId(req.vlan));
  return req.hostShim ? parseIpConfig(req.hostShim) : null;
}

/**
 * Creates a network: its record, its bridge, the gateway on it. Under the host's `networks` lock,
 * so a `network rm` of the same network waits until it is whole (and a create, until it is gone).
 */
export function createNetwork(ctx: CoreContext, req: NetworkRequest): Promise<NetworkRecord> {
  return withLock(ctx.store.stateDir, 'networks', () => create(ctx, req));
}

/** Checks a request against the host before anything is made; a macvlan network's shim address, if it has one. */
export function checkNetworkRequest(req: Omit<NetworkRequest, 'pool'>): IpConfig | null {
  const kind = req.kind ?? 'bridge';
  checkObjectName(req.name, 'network name');
  checkIfname(req.hostIf, kind === 'macvlan' ? 'parent' : 'bridge');
  if (req.hostIf === NO_HOST_IF)
    throw new UsageError(
      `${NO_HOST_IF} is attach's word for a dummy (no host interface); name the bridge or parent otherwise`,
    );
  if (req.mtu !== undefined) checkMtu(req.mtu);
  if (kind === 'bridge' && (req.macvlanMode || req.hostShim || req.vlan !== undefined)) {
    throw new PipewrightError('a macvlan mode, a host shim and a VLAN are for macvlan networks (give a parent)');
  }
  if (req.rate !== undefined) {
    if (kind === 'macvlan') throw new UsageError("rate= needs a bridge network (a veth's host end to shape)");
    parseRates(req.rate);
  }
  return kind === 'macvlan' ? checkMacvlanRequest(req) : null;
}

async function create(ctx: CoreContext, req: NetworkRequest): Promise<NetworkRecord> {
  const kind = req.kind ?? 'bridge';
  const shim = checkNetworkRequest(req);
  const v4 = await subnetOf(ctx, req.pool, req.gateway, 4);
  const v6 = req.pool6 ? await subnetOf(ctx, req.pool6, req.gateway6, 6) : null;
  // On a VLAN, the links' parent is the NIC's VLAN interface; the record names both.
  const parent = req.vlan === undefined ? req.hostIf : vlanInterfaceName(req.hostIf, req.vlan);
  const rec: Omit<NetworkRecord, 'createdAt'> = {
    name: req.name,
    kind,
    hostIf: parent,
    ...{ pool: v4.pool.name, subnet: v4.pool.subnet, gateway: v4.gateway },
    ...{ pool6: v6?.pool.name ?? null, subnet6: v6?.pool.subnet ?? null, gateway6: v6?.gateway ?? null },
    masquerade: Boolean(req.masquerade),
    isolated: Boolean(req.isolated),
    mtu: req.mtu ?? null,
    macvlanMode: req.macvlanMode ?? null,
    hostShim: req.hostShim ?? null,
    vlan: req.vlan ?? null,
    vlanOf: req.vlan === undefined ? null : req.hostIf,
    rate: req.rate === undefined ? null : formatRates(parseRates(req.rate)),
  };
  const clash = findNetwork(ctx.store, req.name) ?? findNetwork(ctx.store, parent);
  // The same network again (a create that was killed after recording it, or a script re-run):
  // make sure of its bridge and gateway, and change nothing else.
  const same = [
    'name',
    'kind',
    'hostIf',
    'pool',
    'pool6',
    'masquerade',
    'isolated',
    'mtu',
    'macvlanMode',
    'hostShim',
    'vlan',
    'vlanOf',
    'rate',
  ] as const;
  const resume = clash !== null && same.every((k) => clash[k] === rec[k]);
  if (clash && !resume)
    throw new PipewrightError(
      `network ${clash.name} already uses ${clash.name === req.name ? 'that name' : `${kind === 'macvlan' ? 'parent' : 'bridge'} ${parent}`}`,
    );
  const existing = hostLinkInfo(req.hostIf);
  if (kind === 'bridge' && existing && !existing.bridge)
    throw new PipewrightError(`${req.hostIf} exists and is not a bridge`);
  if (kind === 'bridge' && !resume) await refuseForwardDrop(ctx, req.hostIf);
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
        // A shim or VLAN interface made for this network is needed while its record says so: released after it.
        () =>
          change(() => deleteNetwork(ctx.store, req.name))
            .then(() => shim && releaseShim(ctx, parent))
            .then(() => req.vlan !== undefined && releaseVlanInterface(ctx, parent)),
      );
    }
    await makeHostLinks(ctx, undo, rec);
    return findNetwork(ctx.store, req.name)!;
  });
}

type NetworkLinks = Pick<
  NetworkRecord,
  'kind' | 'hostIf' | 'subnet' | 'gateway' | 'subnet6' | 'gateway6' | 'hostShim' | 'vlan' | 'vlanOf'
>;

/**
 * What a network has on the host, each made when missing: its VLAN interface, its shim, or its
 * bridge with the gateways on it.
 */
async function makeHostLinks(ctx: CoreContext, undo: UndoStack, net: NetworkLinks): Promise<void> {
  if (net.vlan !== null) await ensureVlanInterface(ctx, undo, net.vlanOf!, net.vlan);
  if (net.hostShim) await ensureShim(ctx, undo, net.hostIf, parseIpConfig(net.hostShim));
  if (net.kind === 'macvlan') return;
  await ensureBridge(ctx, undo, net.hostIf);
  for (const gw of gatewaysOf(net)) {
    const addr = `${gw.address}/${gw.prefix}`;
    await undo.step(
      `address ${addr} on ${net.hostIf}`,
      () => {
        ctx.log?.step(`ip address replace ${addr} dev ${net.hostIf}; ip link set ${net.hostIf} up  (netlink)`);
        return setHostAddress(net.hostIf, gw);
      },
      () => removeHostAddress(net.hostIf, gw),
    );
  }
}

/**
 * A network's host links made again where they are missing. A reboot takes them, and Docker does
 * not create its networks again: the network's next guest (a --restart=always container coming
 * back) makes them. They are the network's: kept when that guest's attach fails.
 */
export async function restoreNetworkLinks(ctx: CoreContext, net: NetworkRecord): Promise<void> {
  if (hostLinkExists(net.hostIf) && (!net.hostShim || hostLinkExists(shimName(net.hostIf)))) return;
  const undo = new UndoStack(ctx.log);
  await undo.all(() => makeHostLinks(ctx, undo, net));
}

/** A pool of the family a network needs, and its gateway: one given (inside the pool) or the pool's own. */
async function subnetOf(ctx: CoreContext, name: string, given: string | undefined, family: 4 | 6) {
  const pool = await ctx.ipam.pool(name);
  if (pool.family !== family)
    throw new PipewrightError(
      `pool ${pool.name} is IPv${pool.family}; a network's ${family === 4 ? 'first' : 'IPv6'} pool must be IPv${family}`,
    );
  if (given && !contains(parseCidr(pool.subnet).address, pool.prefix, given))
    throw new PipewrightError(`gateway ${given} is not in pool ${pool.name} (${pool.subnet})`);
  return { pool, gateway: given ?? pool.gateway };
}

/** The addresses a bridge network's bridge holds: its gateways, IPv4 and IPv6. */
export function gatewaysOf(net: Pick<NetworkRecord, 'subnet' | 'gateway' | 'subnet6' | 'gateway6'>): IpConfig[] {
  const prefixOf = (subnet: string) => parseCidr(subnet).prefix;
  return [
    ...(net.gateway ? [{ address: net.gateway, prefix: prefixOf(net.subnet), family: 4 as const }] : []),
    ...(net.gateway6 && net.subnet6
      ? [{ address: net.gateway6, prefix: prefixOf(net.subnet6), family: 6 as const }]
      : []),
  ];
}

/** Inserts the network unless its name or bridge is taken (checked again inside the transaction). */
function insertUnique(ctx: CoreContext, rec: Omit<NetworkRecord, 'createdAt'>): void {
  const clash = findNetwork(ctx.store, rec.name) ?? findNetwork(ctx.store, rec.hostIf);
  if (clash)
    throw new PipewrightError(
      `network ${clash.name} already uses ${clash.name === rec.name ? 'that name' : `bridge ${rec.hostIf}`}`,
    );
  insertNetwork(ctx.store, rec);
}

export function removeNetwork(ctx: CoreContext, name: string): Promise<NetworkRecord> {
  return withLock(ctx.store.stateDir, 'networks', () => remove(ctx, name));
}

async function remove(ctx: CoreContext, name: string): Promise<NetworkRecord> {
  const net = findNetwork(ctx.store, name);
  if (!net || net.name !== name) throw new PipewrightError(`no network named ${name} (see 'pipewright network ls')`);
  const guests = records.countOnHostIf(ctx.store, net.hostIf);
  if (guests > 0)
    throw new PipewrightError(`network ${name} still has ${guests} guest(s) on ${net.hostIf}; detach them first`);
  await namedStep(`network rm ${name}: firewall`, () => changeFirewallIn(ctx, () => deleteNetwork(ctx.store, name)));
  if (net.kind === 'macvlan') {
    if (net.hostShim)
      await namedStep(`network rm ${name}: host shim`, () =>
        removeMacvlanShim(ctx, net.hostIf, parseIpConfig(net.hostShim!)),
      );
    if (net.vlan !== null)
      await namedStep(`network rm ${name}: VLAN interface`, () => releaseVlanInterface(ctx, net.hostIf));
    return net;
  }
  for (const gw of hostLinkExists(net.hostIf) ? gatewaysOf(net) : []) {
    ctx.log?.step(`ip address del ${gw.address}/${gw.prefix} dev ${net.hostIf}  (netlink)`);
    await namedStep(`network rm ${name}: address`, () => removeHostAddress(net.hostIf, gw));
  }
  await namedStep(`network rm ${name}: bridge`, () => releaseBridge(ctx, net.hostIf));
  return net;
}

/**
 * A network that exists only while it has guests (a podman network's: netavark has no call for its
 * removal): once none is left, its record, bridge and firewall rules go, and its own pool (of the
 * same name) once it holds no lease. `bridge`: the bridge it would have, released also when a
 * killed removal took the record but not the bridge. Whether anything was removed.
 */
export function releaseIdleNetwork(ctx: CoreContext, name: string, bridge?: string): Promise<boolean> {
  return inIdleNetworkTurn(ctx, () => releaseIdle(ctx, name, bridge));
}

/**
 * A guest's attach to a network that releaseIdleNetwork may remove: in turn with that removal, so
 * the network and its pool are not taken between their making and the guest's record.
 */
export function inIdleNetworkTurn<T>(ctx: CoreContext, fn: () => Promise<T>): Promise<T> {
  return withLock(ctx.store.stateDir, 'idle-networks', fn);
}

async function releaseIdle(ctx: CoreContext, name: string, bridge?: string): Promise<boolean> {
  const net = findNetwork(ctx.store, name);
  const mine = net?.name === name;
  if (mine && records.countOnHostIf(ctx.store, net.hostIf) > 0) return false;
  if (mine) await removeNetwork(ctx, name);
  const bridgeGone = !mine && bridge !== undefined && (await releaseBridge(ctx, bridge));
  const pool = await ctx.ipam.findPool(name);
  if (!pool || (await ctx.ipam.leases({ pool: name })).length) return mine || bridgeGone;
  await ctx.ipam.removePool(name);
  return true;
}

/** The network's address off the parent's shim, and the shim itself once nothing needs it. */
async function removeMacvlanShim(ctx: CoreContext, parent: string, address: IpConfig): Promise<void> {
  const shim = shimName(parent);
  ctx.log?.step(`ip address del ${address.address}/${address.prefix} dev ${shim}  (netlink)`);
  await removeHostAddress(shim, address);
  await releaseShim(ctx, parent);
}
