/**
 * The kernel is the truth, the store the intent: each record checked against what the host has.
 *   ok      guest alive, interface present (its live addresses are reported)
 *   stale   the guest, its interface or the host side of its link is gone (gc or detach clears it)
 *   pending an attach in progress, or one that crashed (its owner is gone)
 */
import { readLink, type LinkState } from '../net/link-state/link-state.js';
import { driverFor } from '../net/links/index.js';
import { liveNetns } from '../net/netns/netns.js';
import { guestAlive } from '../runtime/guest.js';
import type { AttachmentRecord } from '../db/attachments.js';
import type { CoreContext } from './context.js';

export interface AttachmentStatus {
  status: 'ok' | 'stale' | 'pending';
  reason?: string;
  link?: LinkState;
}

export async function checkAttachment(ctx: CoreContext, rec: AttachmentRecord): Promise<AttachmentStatus> {
  const stale = (reason: string): AttachmentStatus => ({ status: 'stale', reason });
  if (rec.state === 'pending') return { status: 'pending', reason: `attach by pid ${rec.ownerPid} not finished` };
  if (!(await guestAlive(rec, ctx.docker))) return stale('guest no longer exists');
  const hostSide = driverFor(rec.kind).check(rec);
  // Docker names a joined endpoint's container end and owns its addresses: the host side is pipewright's part.
  if (rec.guestKind === 'endpoint') return hostSide ? stale(hostSide) : { status: 'ok' };
  if (!liveNetns(rec.netnsPath, rec.netnsId)) return stale('network namespace changed (guest restarted?)');
  const link = await readLink(rec.ifname, rec.netnsPath);
  if (!link) return stale(`${rec.ifname} is missing in the guest`);
  return hostSide ? stale(hostSide) : { status: 'ok', link };
}
