/**
 * The kernel is the truth, the store the intent: each record checked against what the host has.
 *   ok      guest alive, interface present (its live addresses are reported)
 *   stale   the guest or its interface is gone (gc or detach clears it)
 *   pending an attach in progress, or one that crashed (its owner is gone)
 */
import { existsSync } from 'node:fs';
import { guestAlive } from '../runtime/guest.js';
import type { AttachmentRecord } from '../store/attachments.js';
import { readLink, type LinkState } from '../kernel/iproute.js';

export interface AttachmentStatus {
  status: 'ok' | 'stale' | 'pending';
  reason?: string;
  link?: LinkState;
}

export async function checkAttachment(rec: AttachmentRecord): Promise<AttachmentStatus> {
  if (rec.state === 'pending') return { status: 'pending', reason: `attach by pid ${rec.ownerPid} not finished` };
  if (!(await guestAlive(rec.guestKind, rec.guestId))) return { status: 'stale', reason: 'guest no longer exists' };
  if (!existsSync(rec.netnsPath)) return { status: 'stale', reason: 'network namespace changed (guest restarted?)' };
  const link = await readLink(rec.ifname, rec.netnsPath);
  if (!link) return { status: 'stale', reason: `${rec.ifname} is missing in the guest` };
  return { status: 'ok', link };
}
