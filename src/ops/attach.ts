/**
 * attach: put one interface into a guest, all or nothing.
 *
 *   record intent (pending) -> bridge (if missing) -> link born in the guest -> FORWARD accept
 *   -> addresses, routes, up -> DHCP lease (if asked) -> gratuitous ARP -> record ready
 *
 * Each step registers its inverse; any failure rolls back what this call did and the error names
 * the step. Re-running an attach that already holds is a no-op; a different one for the same
 * guest interface is refused.
 */
import { PipewrightError, UsageError } from '../util/errors.js';
import { silent } from '../util/log.js';
import type { Guest } from '../runtime/guest.js';
import { guestKey, processAlive } from '../runtime/guest.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord, AttachmentSpec } from '../store/attachments.js';
import { formatIpConfig, type IpConfig, type RouteSpec } from '../model/address.js';
import { changeFirewall } from '../firewall/sync.js';
import { recordPorts, formatPublish, type PortSpec } from './ports.js';
import { deletePortsOf } from '../store/networks.js';
import { readLink } from '../kernel/iproute.js';
import { createShim, setHostAddress } from '../kernel/netlink/links.js';
import { removeIfCreated } from './shared-links.js';
import { logAsIp } from '../kernel/netlink/errno.js';
import { hostLinkExists, hostLinkInfo, setHairpin } from '../kernel/sysfs.js';
import { randomMac } from '../model/mac.js';
import { hostLinkName, shimName } from '../model/host-names.js';
import { leaseByDhcp, plumb } from './plumb.js';
import { createShimCmds, type InterfacePlan } from '../kernel/ip-words.js';
import { releaseAttachment } from './detach.js';
import { restoreAttachment } from './restore.js';
import { UndoStack } from '../util/undo.js';
import { leaseAddresses } from './leases.js';
import { leaseOwner, type CoreContext } from './context.js';
import type { MacvlanMode } from '../model/validate.js';

export type { CoreContext } from './context.js';

export interface AttachRequest {
  /** A bridge (created if missing) or an existing NIC to hang a macvlan from. */
  hostIf: string;
  ifname?: string;
  hostLink?: string;
  mac?: string;
  mtu?: number;
  macvlanMode?: MacvlanMode;
  addresses: IpConfig[];
  /** `pool:<name>` addresses: the next free address of each pool. */
  pools?: string[];
  routes: RouteSpec[];
  dhcp?: boolean;
  /** Move the host interface itself into the guest (pipework's --direct-phys). */
  directPhys?: boolean;
  /** Published ports (`-p`), bridge attachments only. */
  publish?: PortSpec[];
  /** macvlan only: an address for the host's own macvlan on the parent (created once, shared). */
  hostShim?: IpConfig;
}

export interface AttachResult {
  attachment: AttachmentRecord;
  /** False when the same attachment already held and nothing was done. */
  changed: boolean;
}

const DEFAULT_MTU = 1500;
const ARPHRD_ETHER = 1;

function specOf(req: AttachRequest, kind: InterfacePlan['kind'], ifname: string): AttachmentSpec {
  return {
    kind,
    hostIf: req.hostIf,
    ifname,
    mac: req.mac ?? null,
    mtu: req.mtu ?? null,
    macvlanMode: kind === 'macvlan' ? (req.macvlanMode ?? 'bridge') : null,
    addresses: [...req.addresses.map(formatIpConfig), ...(req.pools ?? []).map((p) => `pool:${p}`)],
    routes: req.routes.map((r) => `${r.dst}${r.via ? `@${r.via}` : ''}`),
    dhcp: Boolean(req.dhcp),
    hostShim: req.hostShim ? formatIpConfig(req.hostShim) : null,
    publish: (req.publish ?? []).map(formatPublish),
  };
}

/** Where the guest end hangs: a bridge (existing or to create) gives a veth, an Ethernet NIC a macvlan. */
function hostSide(hostIf: string, directPhys = false): { kind: InterfacePlan['kind']; exists: boolean; mtu: number; mac?: string } {
  const link = hostLinkInfo(hostIf);
  if (!link && directPhys) throw new PipewrightError(`no host interface ${hostIf} to move into the guest`);
  if (!link) return { kind: 'veth', exists: false, mtu: DEFAULT_MTU };
  if (link.bridge && !directPhys) return { kind: 'veth', exists: true, mtu: link.mtu };
  if (link.type !== ARPHRD_ETHER || link.bridge) {
    throw new PipewrightError(`host interface ${hostIf} is not an Ethernet NIC (link type ${link.type}); attach to a bridge or an Ethernet interface`);
  }
  // A moved NIC keeps its own MAC unless one is given.
  return directPhys ? { kind: 'phys', exists: true, mtu: link.mtu, mac: link.mac } : { kind: 'macvlan', exists: true, mtu: link.mtu };
}

/** The spec an attach of `req` would record (what `apply` compares with the store). */
export function intendedSpec(req: AttachRequest): AttachmentSpec {
  return specOf(req, hostSide(req.hostIf, req.directPhys).kind, req.ifname ?? 'eth0');
}

export function sameSpec(a: AttachmentSpec, b: AttachmentSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * What an earlier record means for this request: a no-op (same, and the interface is there),
 * a leftover to clear first (crashed attach, or a guest that lost its interface), or a conflict.
 */
async function checkExisting(ctx: CoreContext, guest: Guest, spec: AttachmentSpec): Promise<AttachResult | null> {
  const old = records.findAttachment(ctx.store, guest.kind, guest.id, spec.ifname);
  if (!old) return null;
  const ownerAlive = old.state === 'pending' && processAlive(old.ownerPid) && old.ownerPid !== process.pid;
  if (ownerAlive) {
    throw new PipewrightError(`another pipewright (pid ${old.ownerPid}) is attaching ${spec.ifname} to ${guest.name}; retry when it is done`);
  }
  const present = old.state === 'ready' && (await readLink(spec.ifname, guest.netnsPath)) !== null;
  if (present && sameSpec(old.spec, spec)) return { attachment: old, changed: false };
  // The same attachment in a guest that lost it (restarted): back with its addresses and MAC.
  if (old.state === 'ready' && sameSpec(old.spec, spec)) return { attachment: await restoreAttachment(ctx, old, guest), changed: true };
  if (present) {
    throw new PipewrightError(
      `${guest.name} already has ${spec.ifname} attached with other settings (${old.spec.hostIf} ${old.spec.addresses.join(' ') || (old.spec.dhcp ? 'dhcp' : '')}); detach it first or choose another -i`,
    );
  }
  await releaseAttachment(ctx, old);
  return null;
}

function chooseHostLink(ctx: CoreContext, guest: Guest, ifname: string, wanted?: string): string {
  if (wanted) {
    if (records.hostLinkTaken(ctx.store, wanted)) throw new PipewrightError(`host interface name ${wanted} is already used by another attachment`);
    return wanted;
  }
  for (let attempt = 0; ; attempt++) {
    const name = hostLinkName(guestKey(guest), ifname, attempt);
    if (!records.hostLinkTaken(ctx.store, name)) return name;
  }
}

export async function attach(ctx: CoreContext, guest: Guest, req: AttachRequest): Promise<AttachResult> {
  const log = ctx.log ?? silent;
  const ifname = req.ifname ?? 'eth0';
  const side = hostSide(req.hostIf, req.directPhys);
  if (req.hostShim && side.kind !== 'macvlan') {
    throw new UsageError(`--host-shim is for macvlan attachments; ${req.hostIf} is a bridge (the host reaches bridge guests through the bridge)`);
  }
  if (req.publish?.length && side.kind !== 'veth') {
    throw new UsageError(`published ports need a bridge; ${req.hostIf} gives a ${side.kind}`);
  }
  const spec = specOf(req, side.kind, ifname);
  const existing = await checkExisting(ctx, guest, spec);
  if (existing) return existing;
  const plan: InterfacePlan = {
    kind: side.kind,
    hostIf: req.hostIf,
    hostLink: side.kind === 'veth' ? chooseHostLink(ctx, guest, ifname, req.hostLink) : undefined,
    ifname,
    mac: req.mac ?? side.mac ?? randomMac(),
    mtu: req.mtu ?? side.mtu,
    macvlanMode: req.macvlanMode,
    addresses: req.addresses,
    routes: req.routes,
  };
  if (plan.hostLink && hostLinkExists(plan.hostLink)) {
    throw new PipewrightError(`host interface ${plan.hostLink} already exists; pick another name with -l`);
  }
  const undo = new UndoStack(log);
  return undo.all(async () => {
    const id: number = await undo.step('record intent', () => ctx.store.tx(() => records.insertPending(ctx.store, {
      guestKind: guest.kind, guestId: guest.id, guestName: guest.name, netnsPath: guest.netnsPath,
      ifname, kind: plan.kind, hostIf: plan.hostIf, hostLink: plan.hostLink ?? null,
      mac: plan.mac, mtu: plan.mtu, spec, ownerPid: process.pid,
    })));
    undo.push('record intent', () => records.deleteAttachment(ctx.store, id));
    plan.addresses = await leaseAddresses(ctx, undo, leaseOwner(guest.kind, guest.id, ifname), req.addresses, req.pools ?? []);
    await plumb(ctx, undo, guest, plan, side.exists);
    if (req.hostShim) await ensureShim(ctx, undo, plan.hostIf, req.hostShim);
    const dhcpPid = req.dhcp ? await leaseByDhcp(ctx, undo, id, guest, plan) : null;
    await finish(ctx, undo, id, guest, plan, req.publish ?? [], dhcpPid);
    const attachment = records.findAttachment(ctx.store, guest.kind, guest.id, ifname)!;
    return { attachment, changed: true };
  });
}

async function ensureShim(ctx: CoreContext, undo: UndoStack, parent: string, address: IpConfig): Promise<void> {
  const log = ctx.log ?? silent;
  const shim = shimName(parent);
  if (hostLinkExists(shim)) {
    await undo.step(`address on host shim ${shim}`, () => setHostAddress(shim, address));
    return;
  }
  await undo.step(`create host shim ${shim} on ${parent}`, async () => {
    logAsIp(log, createShimCmds(parent, shim, address));
    await createShim(parent, shim, address);
    records.recordCreatedHostLink(ctx.store, shim, 'shim');
  }, () => removeIfCreated(ctx, shim, log));
}

/**
 * The last step: the attachment becomes ready, with its published ports, in the same store change
 * the firewall follows (a bridge's first guest brings its forwarding accept, ports their NAT).
 * Rollback turns it back to pending without ports, and the firewall follows again.
 */
async function finish(ctx: CoreContext, undo: UndoStack, id: number, guest: Guest, plan: InterfacePlan, publish: PortSpec[], dhcpPid: number | null): Promise<void> {
  const change = (mutate: () => void) => changeFirewall(ctx.store, mutate, { firewall: ctx.firewall, log: ctx.log });
  await undo.step(`firewall for ${plan.hostIf}`, () => change(() => {
    recordPorts(ctx.store, id, guest.name, plan.hostIf, plan.addresses, publish);
    records.markReady(ctx.store, id, dhcpPid);
  }), () => change(() => {
    deletePortsOf(ctx.store, id);
    records.markPending(ctx.store, id);
  }).then(() => {}));
  // A guest reaching its own published port through the host comes back on the port it left by.
  if (publish.length) await undo.step(`hairpin mode on ${plan.hostLink}`, () => setHairpin(plan.hostLink!, ctx.log));
}

