/**
 * restore: the same attachment again in a guest that lost it (a container restarted: new network
 * namespace, no interfaces). Same interface name, MAC, MTU, addresses (the leases are still held
 * by the guest interface, so pool addresses come back unchanged), routes and port hairpin; the
 * firewall rules never went away. All or nothing, like attach.
 */
import type { Guest } from '../runtime/guest.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord } from '../store/attachments.js';
import { listPorts } from '../store/networks.js';
import { parseIpConfig, parseRoute, type IpConfig } from '../model/address.js';
import { ipamOf, leaseOwner, type CoreContext } from './context.js';
import { removeLink } from './detach.js';
import { silent } from '../util/log.js';
import { leaseByDhcp, plumb } from './plumb.js';
import type { InterfacePlan } from '../kernel/ip-words.js';
import { hostLinkExists, hostLinkInfo, setHairpin } from '../kernel/sysfs.js';
import { UndoStack } from '../util/undo.js';
import { stopDhcpClient } from '../kernel/dhcp-client.js';

/** Static addresses from the spec, pool addresses from the leases the guest interface still holds. */
async function addressesOf(ctx: CoreContext, rec: AttachmentRecord): Promise<IpConfig[]> {
  const statics = rec.spec.addresses.filter((a) => !a.startsWith('pool:')).map(parseIpConfig);
  const ipam = ipamOf(ctx);
  const pooled: IpConfig[] = [];
  for (const lease of await ipam.backend.leases({ owner: leaseOwner(rec.guestKind, rec.guestId, rec.ifname) })) {
    if (statics.some((s) => s.address === lease.address)) continue;
    const pool = await ipam.pool(lease.pool);
    pooled.push({ address: lease.address, prefix: pool.prefix, family: pool.family, ...(pool.gateway ? { gateway: pool.gateway } : {}) });
  }
  return [...statics, ...pooled];
}

export async function restoreAttachment(ctx: CoreContext, rec: AttachmentRecord, guest: Guest): Promise<AttachmentRecord> {
  const plan: InterfacePlan = {
    kind: rec.kind, hostIf: rec.hostIf, hostLink: rec.hostLink ?? undefined, ifname: rec.ifname, mac: rec.mac, mtu: rec.mtu,
    macvlanMode: (rec.spec.macvlanMode ?? undefined) as InterfacePlan['macvlanMode'],
    addresses: await addressesOf(ctx, rec), routes: rec.spec.routes.map(parseRoute),
  };
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    // The old namespace took its end of the pair along; a host end left over would block the name.
    if (plan.hostLink && hostLinkExists(plan.hostLink)) await removeLink(plan, guest.netnsPath, ctx.log ?? silent);
    if (rec.dhcpPid) stopDhcpClient(rec.dhcpPid);
    await plumb(ctx, undo, guest, plan, rec.kind !== 'veth' || hostLinkInfo(rec.hostIf) !== null);
    const dhcpPid = rec.spec.dhcp ? await leaseByDhcp(ctx, undo, rec.id, guest, plan) : null;
    if (plan.hostLink && listPorts(ctx.store, rec.id).length) await undo.step(`hairpin mode on ${plan.hostLink}`, () => setHairpin(plan.hostLink!, ctx.log));
    ctx.store.tx(() => records.moveToNetns(ctx.store, rec.id, guest.netnsPath, guest.name, dhcpPid));
    return records.findAttachment(ctx.store, rec.guestKind, rec.guestId, rec.ifname)!;
  });
}
