/**
 * restore: the same attachment again in a guest that lost it (a container restarted: new network
 * namespace, no interfaces). Same interface name, MAC, MTU, addresses (the leases are still held
 * by the guest interface, so pool addresses come back unchanged), routes (with their metric),
 * bandwidth limits and port hairpin; the
 * firewall rules never went away. All or nothing, like attach.
 */
import { setHairpin } from '../net/links/bridge.js';
import { removeSourceRouting } from '../net/addresses/source-routes.js';
import { stopDhcpClient } from '../net/dhcp/dhcp-client.js';
import { driverFor, NO_IDENTITY } from '../net/links/index.js';
import { linkOptions, ratesOf, routesOfSpec, sbrTable, type AttachmentPlan } from '../model/attachment.js';
import { withHeldGuest, type Guest, type HeldGuest } from '../runtime/guest.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { listPorts } from '../db/networks.js';
import { changeFirewallIn } from './firewall-sync.js';
import { PipewrightError } from '../util/errors.js';
import { withTurnOn } from '../util/operation.js';
import { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';
import { turnKey } from './detach.js';
import { leaseAddresses, leaseOwner } from './leases.js';
import { leaseByDhcp, plumb } from './plumb.js';
import { applyRates } from './shaping.js';

export function restoreAttachment(
  ctx: CoreContext,
  rec: AttachmentRecord,
  guest: Guest | HeldGuest,
): Promise<AttachmentRecord> {
  return withTurnOn(turnKey(rec), `${guest.name} ${rec.ifname}`, () =>
    withHeldGuest(guest, (held) => restoreHeld(ctx, rec, held)),
  );
}

async function restoreHeld(ctx: CoreContext, rec: AttachmentRecord, guest: HeldGuest): Promise<AttachmentRecord> {
  const driver = driverFor(rec.kind);
  const plan: AttachmentPlan = {
    kind: rec.kind,
    hostIf: rec.hostIf,
    hostLink: rec.hostLink,
    ifname: rec.ifname,
    mac: rec.mac,
    mtu: rec.mtu,
    ...linkOptions(rec.spec),
    routes: routesOfSpec(rec.spec),
    addresses: [],
    sbrTable: rec.spec.sbr ? sbrTable(rec.id) : null,
  };
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    await takeOverRecord(ctx, undo, rec, guest, 'restoring');
    // The leases it held, claimed again (never an address configured without a lease).
    plan.addresses = await leaseAddresses(ctx, undo, leaseOwner(rec.guestKind, rec.guestId, rec.ifname), rec.spec);
    // The old namespace took its end of the pair along; a host end left over would block the name.
    // The recorded index was the old namespace's: in this one the link is looked for by name.
    await driver.remove({ ...plan, ...NO_IDENTITY }, guest.netns.path, ctx.log);
    // The same namespace (the interface alone went) still holds its rules.
    if (plan.sbrTable !== null) await removeSourceRouting(guest.netns.path, plan.sbrTable, ctx.log);
    const oldClient = records.dhcpClientOf(rec);
    if (oldClient) stopDhcpClient(oldClient);
    await plumb(ctx, undo, rec.id, guest, driver, plan);
    // A new host end: its limits anew (the ifb, the host's, is still the recorded one).
    await applyRates(ctx, undo, rec, null, ratesOf(rec.spec));
    const dhcpPid = rec.spec.dhcp ? await leaseByDhcp(ctx, undo, rec.id, guest, plan) : null;
    if (plan.hostLink && listPorts(ctx.store, rec.id).length)
      await undo.step(`hairpin mode on ${plan.hostLink}`, () => setHairpin(plan.hostLink!, ctx.log));
    // Ready again in its new namespace, read in that change (a detach may follow at once).
    let ready: AttachmentRecord | undefined;
    await changeFirewallIn(ctx, () => {
      records.moveToNetns(ctx.store, rec.id, { path: guest.netnsPath, id: guest.netns.id }, guest.name, dhcpPid);
      records.markReady(ctx.store, rec.id, dhcpPid);
      ready = records.expectAttachment(ctx.store, rec.guestKind, rec.guestId, rec.ifname, guest.name);
    });
    return ready!;
  });
}

/**
 * The record becomes pending and this operation's for the restore's (or tune's) duration, if it is
 * still as judged (compare-and-set): gc, the daemon's start sweep or a detach that read it before
 * then leave it alone, and one that took it first makes this operation stop. Rollback makes it
 * ready again, as it was (the firewall follows both changes: a bare bridge's accept counts ready
 * guests).
 */
export async function takeOverRecord(
  ctx: CoreContext,
  undo: UndoStack,
  rec: AttachmentRecord,
  guest: Guest,
  doing: 'restoring' | 'tuning',
): Promise<void> {
  await undo.step(
    `record ${doing}`,
    () =>
      changeFirewallIn(ctx, () => {
        if (!records.takeOver(ctx.store, rec))
          throw new PipewrightError(
            `${guest.name} ${rec.ifname} was changed by another pipewright meanwhile; run the command again`,
          );
      }),
    () => changeFirewallIn(ctx, () => records.markReady(ctx.store, rec.id, records.dhcpClientOf(rec))),
  );
}
