/**
 * Host links pipewright makes (bridges, macvlan shims): remembered as its own when created, so
 * they go, and only they go, when nothing needs them any more.
 */
import * as records from '../store/attachments.js';
import type { CoreContext } from './context.js';
import { logAsIp } from '../kernel/netlink/errno.js';
import { createBridge as createNetlinkBridge, deleteHostLink } from '../kernel/netlink/links.js';
import { createBridgeCmds, deleteLinkCmd } from '../kernel/ip-words.js';
import type { StepLog } from '../util/log.js';
import { hostLinkExists } from '../kernel/sysfs.js';
import type { UndoStack } from '../util/undo.js';

export async function createBridge(ctx: CoreContext, undo: UndoStack, bridge: string): Promise<void> {
  await undo.step(`create bridge ${bridge}`, async () => {
    logAsIp(ctx.log, createBridgeCmds(bridge));
    await createNetlinkBridge(bridge);
    records.recordCreatedHostLink(ctx.store, bridge, 'bridge');
  }, () => removeIfCreated(ctx, bridge, ctx.log));
}

/** Deletes a host link (bridge, shim) if pipewright created it, and forgets it. */
export async function removeIfCreated(ctx: CoreContext, name: string, log?: StepLog): Promise<void> {
  if (!records.createdHostLink(ctx.store, name)) return;
  if (hostLinkExists(name)) {
    logAsIp(log, [deleteLinkCmd(name)]);
    await deleteHostLink(name);
  }
  ctx.store.tx(() => records.forgetHostLink(ctx.store, name));
}
