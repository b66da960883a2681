/**
 * gc: makes the store and the kernel agree again after guests died or pipewright itself was killed
 * mid-operation. An attachment whose guest is gone, or a pending one whose pipewright process is
 * gone, is undone from its record; a lease of this host whose owner has no attachment is released.
 * Reservations (`lease reserve`) and other hosts' leases are never touched.
 *
 * The leases are listed before the attachments: an attach records its intent before it leases,
 * so a lease in the list always finds its attachment in the later snapshot (none is taken for an
 * orphan while its attach is under way).
 */
import { guestAlive } from '../runtime/guest.js';
import { listAttachments, ownerAlive, settledBridges, type AttachmentRecord } from '../store/attachments.js';
import { collectOrphanVolumes } from '../storage/volumes.js';
import type { CoreContext } from './context.js';
import { namedStep } from '../util/faults.js';
import { detachAttachment } from './detach.js';
import { leaseOwner } from './leases.js';
import { releaseBridge } from './shared-links.js';

export interface GcAction {
  kind: 'attachment' | 'lease' | 'bridge' | 'volume';
  target: string;
  reason: string;
}

async function deadReason(ctx: CoreContext, rec: AttachmentRecord): Promise<string | null> {
  if (rec.state === 'pending') {
    return rec.ownerPid !== process.pid && !ownerAlive(rec) ? `pipewright pid ${rec.ownerPid} died before finishing` : null;
  }
  return (await guestAlive(rec, ctx.docker)) ? null : 'guest no longer exists';
}

export async function gc(ctx: CoreContext, opts: { dryRun?: boolean } = {}): Promise<GcAction[]> {
  const leases = await ctx.ipam.leases();
  const attachments = await namedStep('gc: list attachments', () => listAttachments(ctx.store));
  const actions: GcAction[] = [];
  const live = new Set<string>();
  const undone = new Set<string>();
  for (const rec of attachments) {
    const owner = leaseOwner(rec.guestKind, rec.guestId, rec.ifname);
    const reason = await deadReason(ctx, rec);
    if (!reason) {
      live.add(owner);
      continue;
    }
    undone.add(owner);
    actions.push({ kind: 'attachment', target: `${rec.guestName} ${rec.ifname}`, reason });
    if (!opts.dryRun) await detachAttachment(ctx, rec);
  }
  for (const lease of leases) {
    // Leases of an attachment undone above went with it (or, with --dry-run, would have).
    if (lease.reserved || lease.host !== ctx.ipam.host || live.has(lease.owner) || undone.has(lease.owner)) continue;
    actions.push({ kind: 'lease', target: `${lease.pool} ${lease.address}`, reason: `owner ${lease.owner} has no attachment` });
    if (!opts.dryRun) await ctx.ipam.release(lease.pool, lease.address);
  }
  if (!opts.dryRun) actions.push(...(await collectLeftovers(ctx)));
  return actions;
}

/** What a killed operation made before it recorded anything that points at it: an unused bridge, a volume directory. */
async function collectLeftovers(ctx: CoreContext): Promise<GcAction[]> {
  const actions: GcAction[] = [];
  for (const bridge of settledBridges(ctx.store)) {
    if (await releaseBridge(ctx, bridge)) actions.push({ kind: 'bridge', target: bridge, reason: 'made by pipewright, used by nothing' });
  }
  for (const name of await collectOrphanVolumes(ctx)) actions.push({ kind: 'volume', target: name, reason: 'a directory without a volume record' });
  return actions;
}
