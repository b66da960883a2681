/**
 * detach: undoes an attachment from its record, whether or not the guest still exists, in the
 * order that never lets a rule point at an address someone else may get next:
 *
 *   firewall (ports and the bridge's accept, with the record turned pending) -> DHCP client ->
 *   link -> leases -> record -> shared links (a bridge pipewright made, a shim) after the last guest
 *
 * A crash in between leaves a pending record whose owner is dead, which gc finishes.
 */
import { stopDhcpClient } from '../kernel/dhcp-client.js';
import { driverFor, type LinkDriver } from '../kernel/links/index.js';
import { holdLiveNetns, releaseNetns } from '../kernel/netns.js';
import { changeFirewallIn } from '../firewall/sync.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord } from '../store/attachments.js';
import { deletePortsOf } from '../store/networks.js';
import type { CoreContext } from './context.js';
import { leaseOwner } from './leases.js';
import { releaseSharedLinks } from './shared-links.js';
import { PipewrightError } from '../util/errors.js';
import { namedStep } from '../util/faults.js';

export async function detachAttachment(ctx: CoreContext, rec: AttachmentRecord): Promise<void> {
  await beginDetach(ctx, rec);
  await finishDetach(ctx, rec);
}

/**
 * The first step: no rule points at the guest any more, and its record is pending (this
 * process's), so a crash after it leaves the rest to gc. Nothing the guest holds is given away yet.
 */
export async function beginDetach(ctx: CoreContext, rec: AttachmentRecord): Promise<void> {
  const what = `${rec.guestName} ${rec.ifname}`;
  // An attach under way in another live process owns its record until it is ready or undone.
  if (rec.state === 'pending' && rec.ownerPid !== process.pid && records.ownerAlive(rec)) {
    throw new PipewrightError(`another pipewright (pid ${rec.ownerPid}) is still attaching ${what}; retry when it is done`);
  }
  await namedStep(`detach ${what}: firewall`, () =>
    changeFirewallIn(ctx, () => {
      deletePortsOf(ctx.store, rec.id);
      records.markPending(ctx.store, rec.id);
    }),
  );
}

/** The rest, after beginDetach: the DHCP client, the link, the leases, the record, shared links. */
export async function finishDetach(ctx: CoreContext, rec: AttachmentRecord): Promise<void> {
  const what = `${rec.guestName} ${rec.ifname}`;
  if (rec.dhcpPid) stopDhcpClient(rec.dhcpPid);
  const driver = driverFor(rec.kind);
  // The link step throws rather than remove a link that is not ours, or while the guest holds the
  // link's place: the lease and the record then stay.
  await namedStep(`detach ${what}: link`, () => removeLink(ctx, rec, driver));
  await namedStep(`detach ${what}: leases`, () => ctx.ipam.releaseOwner(leaseOwner(rec.guestKind, rec.guestId, rec.ifname)));
  await namedStep(`detach ${what}: record`, () => ctx.store.tx(() => records.deleteAttachment(ctx.store, rec.id)));
  await namedStep(`detach ${what}: shared links`, () => releaseSharedLinks(ctx, driver, rec));
}

/**
 * The recorded namespace is opened once and checked on its fd; the link is removed through that fd.
 * The recorded path may name another namespace by now (a reused pid): then the guest side is left alone.
 */
async function removeLink(ctx: CoreContext, rec: AttachmentRecord, driver: LinkDriver): Promise<void> {
  const netns = holdLiveNetns(rec.netnsPath, rec.netnsId);
  try {
    await driver.remove(rec, netns?.path ?? null, ctx.log);
  } finally {
    if (netns) releaseNetns(netns);
  }
}
