/**
 * Host links guests share and pipewright makes when missing: bridges and macvlan shims. Each is
 * remembered as pipewright's own when created, so it goes, and only it goes, when the last guest
 * (or network) that needs it is gone; a bridge the user made stays.
 */
import { createBridge, bridgeHasPorts } from '../kernel/bridge.js';
import { setHostAddress } from '../kernel/addresses.js';
import { deleteLinkWords, logAsIp } from '../kernel/ip-words.js';
import { createShim } from '../kernel/links/macvlan.js';
import { deleteHostLink } from '../kernel/netlink/rtnl.js';
import { hostLinkExists } from '../kernel/sysfs.js';
import type { IpConfig } from '../model/address.js';
import { shimName } from '../model/host-names.js';
import * as records from '../store/attachments.js';
import { findNetwork } from '../store/networks.js';
import type { AttachmentRecord } from '../store/attachments.js';
import type { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';

export async function ensureBridge(ctx: CoreContext, undo: UndoStack, bridge: string): Promise<void> {
  if (hostLinkExists(bridge)) return;
  await undo.step(`create bridge ${bridge}`, async () => {
    await createBridge(bridge, ctx.log);
    records.recordCreatedHostLink(ctx.store, bridge, 'bridge');
  }, () => removeIfCreated(ctx, bridge));
}

/** The parent's shim, created once and shared by the parent's guests; an existing one gets this address too. */
export async function ensureShim(ctx: CoreContext, undo: UndoStack, parent: string, address: IpConfig): Promise<void> {
  const shim = shimName(parent);
  if (hostLinkExists(shim)) {
    await undo.step(`address on host shim ${shim}`, () => setHostAddress(shim, address));
    return;
  }
  await undo.step(`create host shim ${shim} on ${parent}`, async () => {
    await createShim(parent, shim, address, ctx.log);
    records.recordCreatedHostLink(ctx.store, shim, 'shim');
  }, () => removeIfCreated(ctx, shim));
}

/** Deletes a host link (bridge, shim) if pipewright created it, and forgets it. */
export async function removeIfCreated(ctx: CoreContext, name: string): Promise<void> {
  if (!records.createdHostLink(ctx.store, name)) return;
  if (hostLinkExists(name)) {
    logAsIp(ctx.log, [deleteLinkWords(name)]);
    await deleteHostLink(name);
  }
  ctx.store.tx(() => records.forgetHostLink(ctx.store, name));
}

/** After the last guest of a host interface left: a bridge pipewright made (unless still used) or the parent's shim. */
export async function releaseSharedLinks(ctx: CoreContext, rec: AttachmentRecord): Promise<void> {
  if (records.countOnHostIf(ctx.store, rec.hostIf) > 0) return;
  if (rec.kind === 'veth') {
    // Something else (a user's own veth) still plugged in, or a network on it, keeps the bridge.
    if (!bridgeHasPorts(rec.hostIf) && !findNetwork(ctx.store, rec.hostIf)) await removeIfCreated(ctx, rec.hostIf);
  } else if (rec.kind === 'macvlan') {
    await removeIfCreated(ctx, shimName(rec.hostIf));
  }
}
