/**
 * Host links guests share and pipewright makes when missing: bridges, macvlan shims, and the VLAN
 * interfaces networks on a VLAN (and guests on a `<nic>.<id>` parent) hang their links off. Each is
 * remembered as pipewright's own when created, so it goes, and only it goes, when nothing needs it
 * any more; a bridge the user made stays. Whether one exists, is made, or is still used is decided
 * under the host's `links` lock, by one pipewright process at a time: twenty attaches to a new
 * bridge at once make it once, and a rollback never deletes a bridge another attach has joined.
 */
import { setHostAddress } from '../net/addresses/addresses.js';
import { bridgeHasPorts, createBridge } from '../net/links/bridge.js';
import { deleteLinkWords, logAsIp } from '../net/rtnetlink/ip-words.js';
import type { LinkDriver } from '../net/links/index.js';
import { createShim } from '../net/links/macvlan.js';
import { createHostVlan, hostVlanToBe } from '../net/links/vlan.js';
import { errno } from '../net/rtnetlink/errno.js';
import { deleteHostLink } from '../net/rtnetlink/rtnl.js';
import { hostLinkExists } from '../net/link-state/sysfs.js';
import type { IpConfig } from '../model/address.js';
import { shimName, vlanInterfaceName } from '../model/host-names.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { withLock } from '../db/lock.js';
import { findNetwork } from '../db/networks.js';
import type { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';

const underLinksLock = <T>(ctx: CoreContext, fn: () => Promise<T>) => withLock(ctx.store.stateDir, 'links', fn);

/**
 * Something plugged in (a guest's veth, a user's own link), a network on it, or another attachment
 * that will plug in.
 */
function bridgeInUse(ctx: CoreContext, bridge: string): boolean {
  return (
    bridgeHasPorts(bridge) || findNetwork(ctx.store, bridge) !== null || records.othersOnHostIf(ctx.store, bridge) > 0
  );
}

/**
 * Makes the link unless it exists; true when this call made it. A link someone else made meanwhile
 * (EEXIST) is theirs.
 */
async function makeShared(
  ctx: CoreContext,
  name: string,
  kind: 'bridge' | 'shim' | 'vlan',
  make: () => Promise<void>,
): Promise<boolean> {
  return underLinksLock(ctx, async () => {
    if (hostLinkExists(name)) return false;
    try {
      await make();
    } catch (err) {
      if (errno(err) === 'EEXIST') return false;
      throw err;
    }
    records.recordCreatedHostLink(ctx.store, name, kind);
    return true;
  });
}

export async function ensureBridge(ctx: CoreContext, undo: UndoStack, bridge: string): Promise<void> {
  const made = await undo.step(`create bridge ${bridge}`, () =>
    makeShared(ctx, bridge, 'bridge', () => createBridge(bridge, ctx.log)),
  );
  if (made) undo.push(`create bridge ${bridge}`, () => removeIfUnused(ctx, bridge, () => bridgeInUse(ctx, bridge)));
}

/** The parent's shim, created once and shared by the parent's guests; an existing one gets this address too. */
export async function ensureShim(ctx: CoreContext, undo: UndoStack, parent: string, address: IpConfig): Promise<void> {
  const shim = shimName(parent);
  const made = await undo.step(`create host shim ${shim} on ${parent}`, () =>
    makeShared(ctx, shim, 'shim', () => createShim(parent, shim, address, ctx.log)),
  );
  if (made) undo.push(`create host shim ${shim}`, () => releaseShim(ctx, parent));
  else await undo.step(`address on host shim ${shim}`, () => setHostAddress(shim, address));
}

/**
 * VLAN <id> of `nic` on the host for a network, unless it exists (made again after a reboot); a
 * failed create releases it.
 */
export async function ensureVlanInterface(ctx: CoreContext, undo: UndoStack, nic: string, id: number): Promise<void> {
  const name = vlanInterfaceName(nic, id);
  const made = await undo.step(`create VLAN interface ${name} on ${nic}`, () =>
    makeShared(ctx, name, 'vlan', () => createHostVlan(nic, id, name, ctx.log)),
  );
  if (made) undo.push(`create VLAN interface ${name}`, () => releaseVlanInterface(ctx, name));
}

/** A guest's parent spelled `<nic>.<id>` and missing: that NIC's VLAN interface, made (again, after a reboot). */
export async function ensureParentVlan(ctx: CoreContext, undo: UndoStack, parent: string): Promise<void> {
  const toBe = hostLinkExists(parent) ? null : hostVlanToBe(parent);
  if (toBe) await ensureVlanInterface(ctx, undo, toBe.nic, toBe.id);
}

/** A VLAN interface pipewright made, once no network is on it and no guest. */
export function releaseVlanInterface(ctx: CoreContext, name: string): Promise<boolean> {
  return removeIfUnused(
    ctx,
    name,
    () => findNetwork(ctx.store, name) !== null || records.othersOnHostIf(ctx.store, name) > 0,
  );
}

/**
 * Deletes a host link pipewright created, and forgets it, unless `inUse` says something still needs
 * it; true when it went.
 */
async function removeIfUnused(ctx: CoreContext, name: string, inUse: () => boolean): Promise<boolean> {
  return underLinksLock(ctx, async () => {
    if (!records.createdHostLink(ctx.store, name) || inUse()) return false;
    if (hostLinkExists(name)) {
      logAsIp(ctx.log, [deleteLinkWords(name)]);
      await deleteHostLink(name);
    }
    ctx.store.tx(() => records.forgetHostLink(ctx.store, name));
    return true;
  });
}

/** A bridge pipewright made, once nothing uses it (no guest, no network, nothing plugged in). */
export function releaseBridge(ctx: CoreContext, bridge: string): Promise<boolean> {
  return removeIfUnused(ctx, bridge, () => bridgeInUse(ctx, bridge));
}

/**
 * A parent's shim is needed while guests are on the parent or a macvlan network on it gives the
 * host an address there.
 */
function shimInUse(ctx: CoreContext, parent: string): boolean {
  return records.othersOnHostIf(ctx.store, parent) > 0 || Boolean(findNetwork(ctx.store, parent)?.hostShim);
}

/** The parent's shim, if pipewright made it and nothing needs it any more. */
export function releaseShim(ctx: CoreContext, parent: string): Promise<boolean> {
  return removeIfUnused(ctx, shimName(parent), () => shimInUse(ctx, parent));
}

/**
 * After a guest left: its bridge (if pipewright made it and nothing else uses it), its parent's
 * shim, a VLAN interface made for it.
 */
export async function releaseSharedLinks(ctx: CoreContext, driver: LinkDriver, rec: AttachmentRecord): Promise<void> {
  if (driver.onBridge) await releaseBridge(ctx, rec.hostIf);
  if (driver.takesShim) await releaseShim(ctx, rec.hostIf);
  if (!driver.onBridge && records.createdHostLink(ctx.store, rec.hostIf)) await releaseVlanInterface(ctx, rec.hostIf);
}
