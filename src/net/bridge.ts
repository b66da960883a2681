/** Bridges pipewright makes: created up, remembered as its own, so they go when nothing needs them. */
import * as records from '../store/attachments.js';
import type { CoreContext } from './context.js';
import { ipBatch } from './iproute.js';
import { createBridgeCmds, deleteLinkCmd } from './plumbing.js';
import type { UndoStack } from './undo.js';

export async function createBridge(ctx: CoreContext, undo: UndoStack, bridge: string): Promise<void> {
  await undo.step(`create bridge ${bridge}`, async () => {
    await ipBatch(createBridgeCmds(bridge), undefined, ctx.log);
    records.recordCreatedHostLink(ctx.store, bridge, 'bridge');
  }, async () => {
    records.forgetHostLink(ctx.store, bridge);
    await ipBatch([deleteLinkCmd(bridge)], undefined, ctx.log);
  });
}
