/**
 * restore: the same attachment again in a guest that lost it (a container restarted: new network
 * namespace, no interfaces). Same interface name, MAC, MTU, addresses (the leases are still held
 * by the guest interface, so pool addresses come back unchanged), routes and port hairpin; the
 * firewall rules never went away. All or nothing, like attach.
 */
import { setHairpin } from '../kernel/bridge.js';
import { stopDhcpClient } from '../kernel/dhcp-client.js';
import { driverFor, NO_IDENTITY } from '../kernel/links/index.js';
import { linkOptions, routesOfSpec, type AttachmentPlan } from '../model/attachment.js';
import { withHeldGuest, type Guest, type HeldGuest } from '../runtime/guest.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord } from '../store/attachments.js';
import { listPorts } from '../store/networks.js';
import { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';
import { leaseAddresses, leaseOwner } from './leases.js';
import { leaseByDhcp, plumb } from './plumb.js';

export function restoreAttachment(ctx: CoreContext, rec: AttachmentRecord, guest: Guest | HeldGuest): Promise<AttachmentRecord> {
  return withHeldGuest(guest, (held) => restoreHeld(ctx, rec, held));
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
  };
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    // The leases it held, claimed again (never an address configured without a lease).
    plan.addresses = await leaseAddresses(ctx, undo, leaseOwner(rec.guestKind, rec.guestId, rec.ifname), rec.spec);
    // The old namespace took its end of the pair along; a host end left over would block the name.
    // The recorded index was the old namespace's: in this one the link is looked for by name.
    await driver.remove({ ...plan, ...NO_IDENTITY }, guest.netns.path, ctx.log);
    if (rec.dhcpPid) stopDhcpClient(rec.dhcpPid);
    await plumb(ctx, undo, rec.id, guest, driver, plan);
    const dhcpPid = rec.spec.dhcp ? await leaseByDhcp(ctx, undo, rec.id, guest, plan) : null;
    if (plan.hostLink && listPorts(ctx.store, rec.id).length) await undo.step(`hairpin mode on ${plan.hostLink}`, () => setHairpin(plan.hostLink!, ctx.log));
    return ctx.store.tx(() => {
      records.moveToNetns(ctx.store, rec.id, { path: guest.netnsPath, id: guest.netns.id }, guest.name, dhcpPid);
      return records.expectAttachment(ctx.store, rec.guestKind, rec.guestId, rec.ifname, guest.name);
    });
  });
}
