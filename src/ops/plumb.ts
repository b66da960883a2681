/**
 * Putting an interface plan into a guest: the kernel steps shared by attach (a new interface) and
 * restore (the same interface again, in a guest's new namespace after a restart). Each step
 * registers its inverse on the caller's undo stack.
 */
import { PipewrightError } from '../util/errors.js';
import { silent } from '../util/log.js';
import type { Guest } from '../runtime/guest.js';
import { guestKey } from '../runtime/guest.js';
import * as records from '../store/attachments.js';
import { createBridge } from './shared-links.js';
import type { CoreContext } from './context.js';
import { removeLink } from './detach.js';
import { startDhcpClient, stopDhcpClient } from '../kernel/dhcp-client.js';
import { errno, logAsIp } from '../kernel/netlink/errno.js';
import { configureGuest, createLink } from '../kernel/netlink/links.js';
import { hostLinkName } from '../model/host-names.js';
import { configureGuestCmds, createLinkCmds, type InterfacePlan } from '../kernel/ip-words.js';
import type { UndoStack } from '../util/undo.js';

/** Bridge if missing, the link born in the guest, then addresses, up, routes. */
export async function plumb(ctx: CoreContext, undo: UndoStack, guest: Guest, plan: InterfacePlan, bridgeExists: boolean): Promise<void> {
  const log = ctx.log ?? silent;
  if (plan.kind === 'veth' && !bridgeExists) await createBridge(ctx, undo, plan.hostIf);
  await undo.step(`create ${plan.kind} ${plan.ifname} in ${guest.name}`, async () => {
    logAsIp(log, createLinkCmds(plan, guest.netnsPath));
    await createLink(plan, guest.netnsPath).catch((err: Error) => {
      // The kernel checks the name inside the guest; no need to look first.
      if (errno(err) === 'EEXIST') throw new PipewrightError(`${guest.name} already has an interface named ${plan.ifname}; choose another with -i`);
      throw err;
    });
  }, () => removeLink(plan, guest.netnsPath, log));
  await undo.step(`configure ${plan.ifname} in ${guest.name}`, () => {
    logAsIp(log, configureGuestCmds(plan), guest.netnsPath);
    return configureGuest(plan, guest.netnsPath);
  });
}

/** The client's pid is recorded before the wait, so gc can stop it if this process is killed meanwhile. */
export async function leaseByDhcp(ctx: CoreContext, undo: UndoStack, id: number, guest: Guest, plan: InterfacePlan): Promise<number> {
  const key = hostLinkName(guestKey(guest), plan.ifname);
  const client = await undo.step(`start DHCP client on ${plan.ifname}`,
    () => startDhcpClient(ctx.store.stateDir, key, guest.netnsPath, plan.ifname, ctx.log));
  undo.push('stop DHCP client', () => stopDhcpClient(client.pid));
  ctx.store.tx(() => records.setDhcpPid(ctx.store, id, client.pid));
  plan.addresses = [await undo.step(`DHCP lease on ${plan.ifname}`, () => client.lease)];
  return client.pid;
}
