/**
 * Docker endpoints on a pipewright network (the network driver of `pipewright daemon`): the host
 * side only. Docker moves the container end into its sandbox, names it and gives it its
 * addresses, MAC and routes; pipewright makes the veth pair, its host end on the network's
 * bridge, and publishes the endpoint's ports. On a macvlan network the link is a macvlan of the
 * parent, made in the host under a name of pipewright's (its host link, where it waits for Docker
 * and where Docker puts it back at Leave); such a network publishes no ports.
 *
 * An endpoint is an attachment of guest kind `endpoint` ("<network id>/<endpoint id>"), whose
 * interface name is the container end's name while it waits in the host for Docker. So ls, the
 * firewall, detach and gc treat it as every other attachment:
 *
 *   create: record intent -> veth pair (peer left in the host) -> ready (the bridge's accept rules)
 *   join:   the sandbox's namespace recorded; the address announced at the endpoint's MAC
 *   publish: the ports, the firewall following
 *   delete: detach (firewall, link, record, the bridge if pipewright made it and it is unused)
 */
import { announceMove } from '../net/addresses/announce.js';
import { setHairpin } from '../net/links/bridge.js';
import { NO_IDENTITY, type LinkDriver } from '../net/links/driver.js';
import { macvlan } from '../net/links/macvlan.js';
import { veth } from '../net/links/veth.js';
import { netnsIdentity, ownNetns } from '../net/netns/netns.js';
import { hostLinkInfo } from '../net/link-state/sysfs.js';
import { hostIndex } from '../net/rtnetlink/rtnl.js';
import { changeFirewallIn } from './firewall-sync.js';
import {
  checkAttachSpec,
  ratesOf,
  staticAddresses,
  type AttachmentPlan,
  type AttachSpec,
} from '../model/attachment.js';
import { randomMac } from '../model/mac.js';
import type { PortSpec } from '../model/publish.js';
import { hasControl } from '../model/validate.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { deletePortsOf, findNetwork, listPorts, type NetworkRecord } from '../db/networks.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { namedStep } from '../util/faults.js';
import { UndoStack } from '../util/undo.js';
import { unusedHostLinkName } from './attach.js';
import type { CoreContext } from './context.js';
import { beginDetach, detachAttachment, finishDetach } from './detach.js';
import { refuseRejectedPorts } from './forward-drop.js';
import { recordPorts } from './ports.js';
import { applyRates } from './shaping.js';
import { removeNetwork, restoreNetworkLinks } from './network.js';

/** The label on pools made for Docker: `ipam` by its IPAM driver, `network` by its network driver. */
export const DOCKER_KEY = 'pipewright.docker';

/** Docker's names for one endpoint. */
export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

export interface EndpointRequest extends EndpointRef {
  /** The pipewright network whose bridge the endpoint joins. */
  network: string;
  /** `<ip>/<prefix>`, as Docker's IPAM gave them. */
  addresses: string[];
  /** A random one when Docker gave none and the driver derives none. */
  mac?: string;
  /** The endpoint's limits (--driver-opt rate=), else the network's (-o rate=). */
  rate?: string;
}

const guestId = (ref: EndpointRef) => `${ref.networkId}/${ref.endpointId}`;

export function findEndpoint(ctx: CoreContext, ref: EndpointRef): AttachmentRecord | null {
  return records.listAttachments(ctx.store, { kind: 'endpoint', id: guestId(ref) })[0] ?? null;
}

function expectEndpoint(ctx: CoreContext, ref: EndpointRef): AttachmentRecord {
  const rec = findEndpoint(ctx, ref);
  if (!rec)
    throw new PipewrightError(
      `no endpoint ${ref.endpointId.slice(0, 12)} on network ${ref.networkId.slice(0, 12)}; it was never created or is deleted`,
    );
  return rec;
}

const driverOf = (net: NetworkRecord): LinkDriver => (net.kind === 'macvlan' ? macvlan : veth);

/**
 * The link of an endpoint: a veth pair whose peer waits in the host, or a macvlan waiting there
 * under its host link's name.
 */
function endpointPlan(
  ctx: CoreContext,
  net: NetworkRecord,
  req: EndpointRequest,
): { spec: AttachSpec; plan: AttachmentPlan } {
  const driver = driverOf(net);
  const hostLink = unusedHostLinkName(ctx, `endpoint:${guestId(req)}`, 'eth0');
  const ifname = driver === veth ? `${hostLink}c` : hostLink;
  const spec = checkAttachSpec({
    hostIf: net.hostIf,
    ifname,
    hostLink,
    mac: req.mac ?? randomMac(),
    addresses: req.addresses,
    rate: req.rate ?? net.rate,
  });
  if (spec.rate && driver !== veth)
    throw new UsageError(`rate= needs a bridge network (a veth's host end to shape); ${net.name} is a macvlan network`);
  const plan: AttachmentPlan = {
    kind: driver.kind,
    hostIf: net.hostIf,
    hostLink,
    ifname,
    mac: spec.mac!,
    mtu: net.mtu ?? driver.plan(hostLinkInfo(net.hostIf), spec).mtu,
    macvlanMode: net.macvlanMode,
    ipvlanMode: null,
    vlan: null,
    metric: null,
    sbrTable: null,
    addresses: staticAddresses(spec),
    routes: [],
  };
  return { spec, plan };
}

/** Makes the endpoint's link; a replay of one made already is a no-op, a leftover of a killed daemon is redone. */
export async function createEndpoint(ctx: CoreContext, req: EndpointRequest): Promise<AttachmentRecord> {
  const net = findNetwork(ctx.store, req.network);
  if (!net || net.name !== req.network)
    throw new PipewrightError(`no pipewright network ${req.network} for Docker network ${req.networkId.slice(0, 12)}`);
  const driver = driverOf(net);
  await restoreNetworkLinks(ctx, net);
  const old = findEndpoint(ctx, req);
  if (old?.state === 'ready' && driver.check(old) === null) return old;
  if (old) await detachAttachment(ctx, old);
  const id = guestId(req);
  const { spec, plan } = endpointPlan(ctx, net, req);
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    const name = req.endpointId.slice(0, 12);
    const host = ownNetns();
    const rid: number = await undo.step('record intent', () =>
      ctx.store.tx(() =>
        records.insertPending(ctx.store, {
          ...{ guestKind: 'endpoint', guestId: id, guestName: name, netnsPath: host, netnsId: netnsIdentity(host) },
          ...{
            ifname: plan.ifname,
            kind: plan.kind,
            hostIf: plan.hostIf,
            hostLink: plan.hostLink,
            mac: plan.mac,
            mtu: plan.mtu,
            spec,
          },
        }),
      ),
    );
    undo.push('record intent', () => records.deleteAttachment(ctx.store, rid));
    // The container end is born in the host (the host's own namespace as the "guest"): Docker moves it.
    const made = await undo.step(
      `create ${plan.kind} ${plan.hostLink} on ${net.hostIf}`,
      () => driver.create(plan, host, ctx.log),
      () => driver.remove({ ...plan, ...NO_IDENTITY }, null, ctx.log),
    );
    // A macvlan's index, which a move into the sandbox keeps unless it is taken there.
    const hostEnd = driver === veth ? hostIndex(plan.hostLink!) : null;
    ctx.store.tx(() => records.setLinkIdentity(ctx.store, rid, made, hostEnd));
    await applyRates(
      ctx,
      undo,
      { id: rid, hostLink: plan.hostLink, ifbName: null, ifbIndex: null },
      null,
      ratesOf(spec),
    );
    await undo.step(`firewall for ${net.hostIf}`, () =>
      changeFirewallIn(ctx, () => records.markReady(ctx.store, rid, null)),
    );
    return records.expectAttachment(ctx.store, 'endpoint', id, plan.ifname, name);
  });
}

/** Docker put the container end into its sandbox: the record follows it there. */
export async function joinEndpoint(ctx: CoreContext, ref: EndpointRef, sandboxKey: string): Promise<AttachmentRecord> {
  if (!sandboxKey.startsWith('/') || hasControl(sandboxKey))
    throw new PipewrightError('the sandbox key must be an absolute path');
  const rec = expectEndpoint(ctx, ref);
  await namedStep('endpoint join', () =>
    ctx.store.tx(() =>
      records.moveToNetns(ctx.store, rec.id, { path: sandboxKey, id: netnsIdentity(sandboxKey) }, rec.guestName, null),
    ),
  );
  // A container started again has its old address at a new MAC: the bridge's neighbours learn it now.
  if (rec.kind === 'veth') await announceMove(rec.hostIf, rec.mac, staticAddresses(rec.spec), ctx.log);
  return rec;
}

/**
 * The endpoint's published ports become exactly `ports` (a replay changes nothing); hairpin so the
 * container reaches its own.
 */
export async function publishEndpoint(ctx: CoreContext, ref: EndpointRef, ports: PortSpec[]): Promise<void> {
  const rec = expectEndpoint(ctx, ref);
  if (ports.length && rec.kind !== 'veth') {
    throw new PipewrightError(
      `a macvlan network publishes no ports (-p): its containers have addresses of their own on ${rec.hostIf}'s LAN`,
    );
  }
  if (!ports.length && !listPorts(ctx.store, rec.id).length) return; // most containers: no -p, nothing to change
  await refuseRejectedPorts(ports);
  await changeFirewallIn(ctx, () => {
    deletePortsOf(ctx.store, rec.id);
    recordPorts(ctx.store, rec.id, rec.guestName, rec.hostIf, staticAddresses(rec.spec), ports);
  });
  if (ports.length) setHairpin(rec.hostLink!, ctx.log);
}

export async function unpublishEndpoint(ctx: CoreContext, ref: EndpointRef): Promise<void> {
  const rec = findEndpoint(ctx, ref);
  if (rec && listPorts(ctx.store, rec.id).length) await changeFirewallIn(ctx, () => deletePortsOf(ctx.store, rec.id));
}

/**
 * Removes an endpoint in two parts: its ports and rules at once (resolved), then its link, record
 * and the rest (`rest`, which the caller runs after answering Docker: deleting a veth waits for the
 * kernel's RCU grace period, 10-30 ms, that Docker need not wait for). Until `rest` is done the
 * record is pending and this process's: if it dies in between, the next daemon (or gc) finishes it.
 * One already gone is fine (Docker replays deletes): no rest then.
 */
export async function beginEndpointRemoval(ctx: CoreContext, ref: EndpointRef): Promise<(() => Promise<void>) | null> {
  const rec = findEndpoint(ctx, ref);
  if (!rec) return null;
  await beginDetach(ctx, rec);
  return async () => {
    await namedStep('endpoint removal answered', () => {});
    await finishDetach(ctx, rec);
  };
}

/** Endpoint removals a daemon killed before finishing them left pending: done now (at the daemon's start). */
export async function finishOrphanedEndpoints(ctx: CoreContext): Promise<AttachmentRecord[]> {
  const orphans = records
    .listAttachments(ctx.store)
    .filter((r) => r.guestKind === 'endpoint' && r.state === 'pending' && !records.ownerAlive(r));
  for (const rec of orphans) await detachAttachment(ctx, rec);
  return orphans;
}

/**
 * Removes a Docker network (pipewright's `name`, Docker's ID or its first 12 digits) that Docker
 * holds no endpoint on: DeleteNetwork says so, and so does an engine that no longer knows the
 * network (gc). Endpoint records of it still here are leftovers of calls Docker gave up on (a
 * daemon killed mid-call, whose next one Docker never told, or an operation of this daemon that
 * ended without finishing) and are undone, but for one that an operation still in flight holds
 * (ownership is per operation: this daemon runs many at once); then the network, its bridge, and the pools the
 * network driver made for it once nothing is leased from them.
 */
export async function removeDockerNetwork(
  ctx: CoreContext,
  name: string,
  networkId: string,
): Promise<AttachmentRecord[]> {
  const net = findNetwork(ctx.store, name);
  if (!net || net.name !== name) return []; // a replay
  const id12 = networkId.slice(0, 12);
  const leftovers = records
    .listAttachments(ctx.store)
    .filter(
      (r) =>
        r.guestKind === 'endpoint' &&
        r.guestId.slice(0, 12) === id12 &&
        !(r.state === 'pending' && records.ownerBusy(r)),
    );
  for (const rec of leftovers) await detachAttachment(ctx, rec);
  await removeNetwork(ctx, name);
  for (const poolName of [net.pool, net.pool6]) {
    const pool = poolName ? await ctx.ipam.findPool(poolName) : null;
    if (pool?.labels[DOCKER_KEY] === 'network' && (await ctx.ipam.leases({ pool: pool.name })).length === 0)
      await ctx.ipam.removePool(pool.name);
  }
  return leftovers;
}
