/**
 * pipewright as a library: the same operations the CLI runs, for programs that plumb many guests
 * in one process (one process start instead of one per guest).
 *
 *   import { openContext, checkAttachSpec, resolveGuest, attach, detach, closeContext } from 'pipewright';
 *   const ctx = await openContext({ stateDir: '/var/lib/pipewright' });
 *   const guest = await resolveGuest('netns:blue', ctx.docker);
 *   await attach(ctx, guest, checkAttachSpec({ hostIf: 'br0', addresses: ['pool:lan'] }));
 *   await closeContext(ctx);
 *
 * Nothing here reads the environment: the caller says where the store is and which backends to use.
 * Errors are PipewrightErrors with one-line messages (UsageError: the input itself was wrong).
 */
import type { CoreContext } from './ops/context.js';
import type { Guest } from './runtime/guest.js';
import { listAttachments, type AttachmentRecord } from './db/attachments.js';
import { listNetworks as listNetworkRecords, type NetworkRecord } from './db/networks.js';
import { listVolumes as listVolumeRecords, type VolumeRecord } from './db/volumes.js';

export { openContext, closeContext, type CoreContext, type ContextOptions } from './ops/context.js';
export {
  checkAttachSpec,
  sameSpec,
  DEFAULT_IFNAME,
  type AttachSpec,
  type AttachInput,
  type AttachmentPlan,
  type LinkKind,
} from './model/attachment.js';
export { attach, type AttachResult } from './ops/attach.js';
export { detachAttachment as detach } from './ops/detach.js';
export { restoreAttachment as restore } from './ops/restore.js';
export { gc, type GcAction } from './ops/gc.js';
export { checkAttachment, type AttachmentStatus } from './ops/status.js';
export { createNetwork, removeNetwork, type NetworkRequest } from './ops/network.js';
export type { GuestKind } from './model/guest.js';
export { resolveGuest, type Guest } from './runtime/guest.js';
export { syncFirewall, type FirewallChoice } from './ops/firewall-sync.js';
export type { Ipam } from './net/ipam/allocator.js';
export type { Pool, PoolInput } from './net/ipam/pool.js';
export type { Lease } from './net/ipam/backend.js';
export { createVolume, removeVolume, getVolume, inspectVolume, pruneVolumes } from './storage/volumes.js';
export { mountInto, unmountFrom, type MountOptions } from './storage/mount.js';
export { parseMountSpec, parseVolumeOpts, type MountSpec, type VolumeOptions } from './storage/spec.js';
export { PipewrightError, UsageError, StepError } from './util/errors.js';
export { silent, type StepLog } from './util/log.js';
export type { AttachmentRecord, NetworkRecord, VolumeRecord };

/** Recorded attachments, of one guest or all. */
export function attachments(ctx: CoreContext, guest?: Pick<Guest, 'kind' | 'id'>): AttachmentRecord[] {
  return listAttachments(ctx.store, guest);
}

export function networks(ctx: CoreContext): NetworkRecord[] {
  return listNetworkRecords(ctx.store);
}

export function volumes(ctx: CoreContext): VolumeRecord[] {
  return listVolumeRecords(ctx.store);
}
