/** Bridges pipewright makes: created up, remembered as its own, so they go when nothing needs them. */
import * as records from '../store/attachments.js';
import type { CoreContext } from './context.js';
import { logAsIp } from './netlink/errors.js';
import { createBridge as createNetlinkBridge, deleteHostLink } from './netlink/links.js';
import { createBridgeCmds, deleteLinkCmd } from './plumbing.js';
import type { UndoStack } from './undo.js';

export async function createBridge(ctx: CoreContext, undo: UndoStack, bridge: string): Promise<void> {
  await undo.step(`create bridge ${bridge}`, async () => {
    logAsIp(ctx.log, createBridgeCmds(bridge));
    await createNetlinkBridge(bridge);
    records.recordCreatedHostLink(ctx.store, bridge, 'bridge');
  }, async () => {
    records.forgetHostLink(ctx.store, bridge);
    logAsIp(ctx.log, [deleteLinkCmd(bridge)]);
    await deleteHostLink(bridge);
  });
}
