/**
 * detach: undo an attachment from its record, whether or not the guest still exists. The last
 * guest to leave a bridge takes its FORWARD accept with it, and a bridge pipewright created goes
 * too once nothing else is plugged into it.
 */
import type { StepLog } from '../util/log.js';
import { silent } from '../util/log.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord } from '../store/attachments.js';
import { existsSync, readdirSync } from 'node:fs';
import { ipamOf, leaseOwner, type CoreContext } from './context.js';
import { stopDhcpClient } from '../kernel/dhcp-client.js';
import { changeFirewall } from '../firewall/sync.js';
import { findNetwork } from '../store/networks.js';
import { deleteHostLink, releaseGuestLink } from '../kernel/netlink/links.js';
import { logAsIp } from '../kernel/netlink/errno.js';
import { deleteLinkCmd, returnPhysCmd, type InterfacePlan } from '../kernel/ip-words.js';
import { shimName } from '../model/host-names.js';
import { removeIfCreated } from './shared-links.js';
import { hostLinkExists, ownNetns } from '../kernel/sysfs.js';

type Ctx = CoreContext;

/** Removes the kernel side of one attachment (what is still there), then its record. */
export async function releaseAttachment(ctx: Ctx, rec: AttachmentRecord): Promise<void> {
  const log = ctx.log ?? silent;
  if (rec.dhcpPid) stopDhcpClient(rec.dhcpPid);
  await removeLink({ kind: rec.kind, hostIf: rec.hostIf, hostLink: rec.hostLink ?? undefined, ifname: rec.ifname }, rec.netnsPath, log);
  await ipamOf(ctx).releaseOwner(leaseOwner(rec.guestKind, rec.guestId, rec.ifname));
  // Its ports go with it (cascade), and the firewall follows the store.
  await changeFirewall(ctx.store, () => records.deleteAttachment(ctx.store, rec.id), { firewall: ctx.firewall, log });
  if (records.countOnHostIf(ctx.store, rec.hostIf) === 0) await releaseHostIf(ctx, rec, log);
}

/**
 * Takes one attachment's link away, wherever it still is: a veth from the host end (that deletes
 * both), a macvlan inside the guest, a moved NIC back to the host under its own name.
 */
export async function removeLink(link: Pick<InterfacePlan, 'kind' | 'hostIf' | 'hostLink' | 'ifname'>, netnsPath: string, log: StepLog): Promise<void> {
  if (link.kind === 'veth') {
    if (!link.hostLink || !hostLinkExists(link.hostLink)) return;
    logAsIp(log, [deleteLinkCmd(link.hostLink)]);
    return deleteHostLink(link.hostLink);
  }
  if (!existsSync(netnsPath)) return;
  logAsIp(log, [link.kind === 'phys' ? returnPhysCmd(link.ifname, link.hostIf, ownNetns()) : deleteLinkCmd(link.ifname)], netnsPath);
  await releaseGuestLink(link, netnsPath);
}

/** The bridge's rule and a bridge pipewright made, or the parent's shim, go with the last guest. */
async function releaseHostIf(ctx: Ctx, rec: AttachmentRecord, log: StepLog): Promise<void> {
  if (rec.kind === 'veth') {
    if (!bridgeHasPorts(rec.hostIf) && !findNetwork(ctx.store, rec.hostIf)) await removeIfCreated(ctx, rec.hostIf, log);
  } else if (rec.kind === 'macvlan') {
    await removeIfCreated(ctx, shimName(rec.hostIf), log);
  }
}

/** Something else (a user's own veth, a shim) still plugged into the bridge keeps it alive. */
function bridgeHasPorts(bridge: string): boolean {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) && readdirSync(dir).length > 0;
}
