/**
 * Default-drop hosts: where another program's nftables chain would drop a bridge's forwarded
 * traffic (net/firewall/forward-drop.ts), attach and network create refuse in one line naming it,
 * before anything is made. Looked for once per bridge: at network create, and at a bridge's first
 * guest whose traffic the host forwards. And where firewalld rejects every published port but its
 * own (net/firewall/firewalld.ts), each publishing refuses.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AttachSpec } from '../model/attachment.js';
import { checkForwardDrop } from '../net/firewall/forward-drop.js';
import { checkStrictForwardPorts } from '../net/firewall/firewalld.js';
import { countOnHostIf } from '../db/attachments.js';
import { findNetwork } from '../db/networks.js';
import type { CoreContext } from './context.js';
import { resolveFirewall } from './firewall-sync.js';

const BR_NF_CALL = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/** br_netfilter hands frames bridged between guests to the forward hook too. */
const bridgedFramesFiltered = () => existsSync(BR_NF_CALL) && readFileSync(BR_NF_CALL, 'utf8').trim() === '1';

export function refuseForwardDrop(ctx: CoreContext, bridge: string): Promise<void> {
  return checkForwardDrop(bridge, resolveFirewall(ctx.firewall));
}

/** Before a bridge's first guest, when the host forwards its traffic: published ports, a network's gateway, br_netfilter. */
export async function refuseForwardDropForGuest(ctx: CoreContext, spec: AttachSpec): Promise<void> {
  if (countOnHostIf(ctx.store, spec.hostIf) > 0) return;
  if (spec.publish.length || findNetwork(ctx.store, spec.hostIf) || bridgedFramesFiltered())
    await refuseForwardDrop(ctx, spec.hostIf);
}

/** Before ports are published: refused where firewalld would reject them all. */
export async function refuseRejectedPorts(ports: readonly unknown[]): Promise<void> {
  if (ports.length) await checkStrictForwardPorts();
}
