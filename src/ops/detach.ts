/**
 * detach: undoes an attachment from its record, whether or not the guest still exists, in the
 * order that never lets a rule point at an address someone else may get next:
 *
 *   firewall (ports and the bridge's accept, with the record turned pending) -> DHCP client ->
 *   link -> ifb -> leases -> record -> shared links (a bridge pipewright made, a shim) after the last guest
 *
 * A veth's host end and its ifb may go while the firewall step writes (leavesAlongsideRules).
 *
 * A crash in between leaves a pending record whose owner is dead, which gc finishes.
 */
import { removeSourceRouting } from '../net/addresses/source-routes.js';
import { sbrTable } from '../model/attachment.js';
import { stopDhcpClient } from '../net/dhcp/dhcp-client.js';
import { driverFor, type LinkDriver } from '../net/links/index.js';
import { holdLiveNetns, releaseNetns } from '../net/netns/netns.js';
import { changeFirewallIn } from './firewall-sync.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { deletePortsOf } from '../db/networks.js';
import type { CoreContext } from './context.js';
import { leaseOwner } from './leases.js';
import { releaseSharedLinks } from './shared-links.js';
import { dropIfb } from './shaping.js';
import { PipewrightError } from '../util/errors.js';
import { namedStep } from '../util/faults.js';
import { withTurnOn } from '../util/operation.js';

/** What operations on one guest interface take turns on in this process: its kind, id and ifname. */
export function turnKey(g: Pick<AttachmentRecord, 'guestKind' | 'guestId' | 'ifname'>): string {
  return leaseOwner(g.guestKind, g.guestId, g.ifname);
}

/** Whether a detach judged on an older copy of the record is still due (gc re-judges the record as it is now). */
export type StillDue = (now: AttachmentRecord) => Promise<boolean>;

/**
 * Detaches the record as it is now (the caller's copy may be stale); true when it did. False when
 * it is gone already, `stillDue` says no, or another pipewright took it over meanwhile.
 */
export async function detachAttachment(ctx: CoreContext, rec: AttachmentRecord, stillDue?: StillDue): Promise<boolean> {
  return withTurnOn(turnKey(rec), `${rec.guestName} ${rec.ifname}`, async () => {
    // A veth's host end goes while the kernel takes the rules away: its delete and a set
    // element's each wait for RCU grace periods, and waited at once they overlap.
    let left = false;
    const now = await beginDetach(ctx, rec, stillDue, async (ctx, taken) => {
      if (!leavesAlongsideRules(taken)) return;
      await leaveGuest(ctx, taken);
      left = true;
    });
    if (now) await finishDetach(ctx, now, { guestLeft: left });
    return now !== null;
  });
}

/**
 * Whether the guest's side may go while the rules are written, under the host's firewall lock:
 * only a veth's host end, in the host's namespace (work inside a guest's namespace, which the guest
 * can slow down, is never done under that lock), and not a DHCP client's, whose stop releases
 * its address to a server while the rules still point at it.
 */
export function leavesAlongsideRules(rec: AttachmentRecord): boolean {
  return rec.kind === 'veth' && !rec.spec.sbr && !rec.spec.dhcp;
}

/**
 * The first step: no rule points at the guest any more, and its record is pending (this
 * operation's), so a crash after it leaves the rest to gc. Nothing the guest holds is given away
 * yet. The record as taken over, or null (see detachAttachment).
 */
export async function beginDetach(
  ctx: CoreContext,
  rec: AttachmentRecord,
  stillDue?: StillDue,
  alongside?: (ctx: CoreContext, taken: AttachmentRecord) => Promise<void>,
): Promise<AttachmentRecord | null> {
  const what = `${rec.guestName} ${rec.ifname}`;
  return withTurnOn(turnKey(rec), what, async () => {
    const now = records.attachmentById(ctx.store, rec.id);
    if (!now || (stillDue && !(await stillDue(now)))) return null;
    // An attach or restore under way (in another process, or another operation of this one) owns
    // its record until it is done.
    if (now.state === 'pending' && records.ownerBusy(now)) {
      throw new PipewrightError(
        `another pipewright (pid ${now.ownerPid}) is still attaching ${what}; retry when it is done`,
      );
    }
    let taken = false;
    await namedStep(`detach ${what}: firewall`, () =>
      changeFirewallIn(
        ctx,
        () => {
          taken = records.takeOver(ctx.store, now);
          if (taken) deletePortsOf(ctx.store, now.id);
        },
        async () => {
          if (taken && alongside) await alongside(ctx, now);
        },
      ),
    );
    return taken ? records.attachmentById(ctx.store, now.id) : null;
  });
}

/**
 * The rest, after beginDetach: the DHCP client, the link and its ifb (unless `guestLeft`: done
 * alongside the firewall's change), the leases, the record, shared links.
 */
export async function finishDetach(
  ctx: CoreContext,
  rec: AttachmentRecord,
  opts = { guestLeft: false },
): Promise<void> {
  return withTurnOn(turnKey(rec), `${rec.guestName} ${rec.ifname}`, () => finish(ctx, rec, opts.guestLeft));
}

/** The DHCP client, the link and its ifb. */
async function leaveGuest(ctx: CoreContext, rec: AttachmentRecord): Promise<void> {
  const what = `${rec.guestName} ${rec.ifname}`;
  const dhcp = records.dhcpClientOf(rec);
  if (dhcp) stopDhcpClient(dhcp);
  // The link step throws rather than remove a link that is not ours, or while the guest holds the
  // link's place: the lease and the record then stay.
  await namedStep(`detach ${what}: link`, () => removeLink(ctx, rec, driverFor(rec.kind)));
  await namedStep(`detach ${what}: ifb`, () => dropIfb(ctx, rec));
}

async function finish(ctx: CoreContext, rec: AttachmentRecord, guestLeft: boolean): Promise<void> {
  const what = `${rec.guestName} ${rec.ifname}`;
  if (!guestLeft) await leaveGuest(ctx, rec);
  const driver = driverFor(rec.kind);
  await namedStep(`detach ${what}: leases`, () =>
    ctx.ipam.releaseOwner(leaseOwner(rec.guestKind, rec.guestId, rec.ifname)),
  );
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
    // A rule outlives its interface: the guest's own namespace would keep it.
    if (netns && rec.spec.sbr) await removeSourceRouting(netns.path, sbrTable(rec.id), ctx.log);
    await driver.remove(rec, netns?.path ?? null, ctx.log);
  } finally {
    if (netns) releaseNetns(netns);
  }
}
