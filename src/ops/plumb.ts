/**
 * Putting a plan into a guest: the kernel steps shared by attach (a new interface) and restore
 * (the same interface again, in a guest's new namespace after a restart). Each step registers
 * its inverse on the caller's undo stack.
 */
import { checkLease, startDhcpClient, stopDhcpClient } from '../net/dhcp/dhcp-client.js';
import { readLink } from '../net/link-state/link-state.js';
import { waitForwarding } from '../net/links/bridge.js';
import { configureGuest, type Reannounce } from '../net/addresses/guest-config.js';
import type { LinkDriver, LinkIdentity } from '../net/links/index.js';
import { errno } from '../net/rtnetlink/errno.js';
import { hostIndex } from '../net/rtnetlink/rtnl.js';
import type { AttachmentPlan } from '../model/attachment.js';
import { hostLinkName } from '../model/host-names.js';
import { guestKey, type HeldGuest } from '../runtime/guest.js';
import * as records from '../db/attachments.js';
import { findNetwork } from '../db/networks.js';
import { PipewrightError } from '../util/errors.js';
import type { ProcessRef } from '../util/process.js';
import type { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';
import { restoreNetworkLinks } from './network.js';
import { ensureBridge, ensureParentVlan } from './shared-links.js';

/**
 * Bridge (or parent VLAN interface) if missing, the link born in the guest (its identity recorded
 * in record `id` at once, for whoever removes it), then addresses, up, routes.
 */
export async function plumb(
  ctx: CoreContext,
  undo: UndoStack,
  id: number,
  guest: HeldGuest,
  driver: LinkDriver,
  plan: AttachmentPlan,
): Promise<void> {
  // A network's bridge (or shim) comes back whole, its gateways on it; another bridge is made bare.
  const net = findNetwork(ctx.store, plan.hostIf);
  if (net?.hostIf === plan.hostIf) await restoreNetworkLinks(ctx, net);
  else if (driver.onBridge) await ensureBridge(ctx, undo, plan.hostIf);
  else await ensureParentVlan(ctx, undo, plan.hostIf);
  const made: LinkIdentity = await undo.step(
    `create ${plan.kind} ${plan.ifname} in ${guest.name}`,
    () =>
      driver.create(plan, guest.netns.path, ctx.log).catch((err: Error) => {
        // The kernel checks the name inside the guest; no need to look first.
        if (errno(err) === 'EEXIST')
          throw new PipewrightError(
            `${guest.name} already has an interface named ${plan.ifname}; choose another with -i`,
          );
        throw err;
      }),
    () => driver.remove({ ...plan, ...made }, guest.netns.path, ctx.log),
  );
  // A host end (a veth's) by its index too: self-healing plugs it back by that, not by a name anyone can take.
  const hostEnd = plan.hostLink ? hostIndex(plan.hostLink) : null;
  ctx.store.tx(() => records.setLinkIdentity(ctx.store, id, made, hostEnd));
  await undo.step(`configure ${plan.ifname} in ${guest.name}`, () =>
    configureGuest(plan, guest.netns.path, ctx.log, reannounceOf(plan)),
  );
}

/**
 * The gratuitous ARP sent as the guest end came up races the bridge port's switch to forwarding
 * (the kernel turns the carrier on asynchronously): once the port forwards, announce once more,
 * so neighbours that cached an old MAC for a reused address learn the new one. A bridge with STP
 * still learning is not waited for (its own delay applies).
 */
function reannounceOf(plan: AttachmentPlan): Reannounce | undefined {
  if (!plan.hostLink || !plan.addresses.some((a) => a.family === 4)) return undefined;
  return { mac: plan.mac, when: () => waitForwarding(plan.hostLink!) };
}

/**
 * The client (pid and start time) is recorded before the wait, so gc can stop it if this process is
 * killed meanwhile.
 */
export async function leaseByDhcp(
  ctx: CoreContext,
  undo: UndoStack,
  id: number,
  guest: HeldGuest,
  plan: AttachmentPlan,
): Promise<ProcessRef> {
  const key = hostLinkName(guestKey(guest), plan.ifname);
  const client = await undo.step(`start DHCP client on ${plan.ifname}`, () =>
    startDhcpClient(ctx.store.stateDir, key, guest.netns.fd, plan.ifname, plan.metric, ctx.log),
  );
  const ref = { pid: client.pid, start: client.start };
  undo.push('stop DHCP client', () => stopDhcpClient(ref));
  ctx.store.tx(() => records.setDhcpClient(ctx.store, id, ref));
  const lease = await undo.step(`DHCP lease on ${plan.ifname}`, () => client.lease);
  checkLease(lease, plan.hostIf, (await readLink(plan.hostIf, undefined))?.addresses ?? []);
  plan.addresses = [lease];
  return ref;
}
