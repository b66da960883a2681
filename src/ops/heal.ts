/**
 * What the store says the host holds, checked against the kernel and put back where another
 * program took it away: a firewall reload or flush (firewalld, `systemctl restart nftables`,
 * `iptables -F`), a network manager taking a bridge's gateway address, or deleting the bridge.
 * Checks read only (a write would be a kernel event again); repairs take the same host locks as
 * the operations that made the state, and re-read the store under them. The daemon runs these
 * on kernel change events (daemon/heal.ts).
 */
import { readLinks, type LinkState } from '../net/link-state/link-state.js';
import { setHostAddress } from '../net/addresses/addresses.js';
import { plugIntoBridge, setHairpin } from '../net/links/bridge.js';
import { desiredRules } from '../net/firewall/rules.js';
import { sameSubnet, type IpConfig } from '../model/address.js';
import { listAttachments, type AttachmentRecord } from '../db/attachments.js';
import { withLock } from '../db/lock.js';
import { findNetwork, firewallState, listNetworks, listPorts, type NetworkRecord } from '../db/networks.js';
import type { CoreContext } from './context.js';
import { firewallNamesOf, resolveFirewall, syncFirewall } from './firewall-sync.js';
import { gatewaysOf, restoreNetworkLinks } from './network.js';

/** What differs between the firewall the store wants and the kernel's (one line), or null. Writes nothing. */
export async function firewallDrift(ctx: CoreContext): Promise<string | null> {
  const rules = desiredRules(firewallState(ctx.store));
  if (!rules.length) return null;
  const { firewallDrift: drift } = await import('../net/firewall/drift.js');
  return drift(resolveFirewall(ctx.firewall), rules, firewallNamesOf(ctx.store));
}

/** The firewall brought back when it drifted (a full sync under the firewall lock); what had drifted, or null. */
export async function healFirewall(ctx: CoreContext, force = false): Promise<string | null> {
  const drift = force ? 'host links were repaired' : await firewallDrift(ctx);
  if (drift) await syncFirewall(ctx.store, { firewall: ctx.firewall, log: ctx.log });
  return drift;
}

/** What one bridge network lacks on the host. */
interface NetworkDrift {
  network: string;
  bridgeMissing: boolean;
  bridgeDown: boolean;
  gateways: IpConfig[];
  /** Host ends of its guests' veths that are on no bridge (the bridge was deleted under them). */
  ports: Port[];
}

/** A guest's host end as found now, and its record. */
interface Port {
  link: LinkState;
  rec: AttachmentRecord;
}

/** The host's links, by index and by name. */
interface HostLinks {
  byIndex: Map<number, LinkState>;
  byName: Map<string, LinkState>;
}

/**
 * A veth's host end: the link at its recorded index (a name is anyone's to take: another link may
 * hold it, ours may be renamed), by name for records of older versions; a veth only.
 */
function hostEndOf(a: AttachmentRecord, links: HostLinks): LinkState | undefined {
  const l = a.hostIndex !== null ? links.byIndex.get(a.hostIndex) : links.byName.get(a.hostLink!);
  return l?.kind === 'veth' ? l : undefined;
}

const holds = (link: LinkState | undefined, gw: IpConfig) =>
  Boolean(link?.addresses.some((a) => sameSubnet(a, `${gw.address}/${gw.prefix}`, 'address')));

function driftOf(ctx: CoreContext, net: NetworkRecord, links: HostLinks): NetworkDrift | null {
  const bridge = links.byName.get(net.hostIf);
  // Something else by that name now (not a bridge): not pipewright's to replace.
  if (bridge && bridge.kind !== 'bridge') return null;
  const ports = listAttachments(ctx.store)
    .filter((a) => a.state === 'ready' && a.kind === 'veth' && a.hostIf === net.hostIf && a.hostLink)
    .map((rec) => ({ rec, link: hostEndOf(rec, links) }))
    .filter((p): p is Port => p.link !== undefined && !p.link.master);
  const d: NetworkDrift = {
    network: net.name,
    bridgeMissing: !bridge,
    bridgeDown: Boolean(bridge && !bridge.up),
    gateways: gatewaysOf(net).filter((gw) => !holds(bridge, gw)),
    ports,
  };
  return d.bridgeMissing || d.bridgeDown || d.gateways.length || d.ports.length ? d : null;
}

/** The bridge networks whose bridge, gateway addresses or guest ports are not on the host as recorded. */
export async function linkDrift(ctx: CoreContext): Promise<NetworkDrift[]> {
  const nets = listNetworks(ctx.store).filter((n) => n.kind === 'bridge');
  if (!nets.length) return [];
  const read = await readLinks(undefined);
  const links = { byIndex: new Map(read.map((l) => [l.ifindex, l])), byName: new Map(read.map((l) => [l.ifname, l])) };
  return nets.map((n) => driftOf(ctx, n, links)).filter((d): d is NetworkDrift => d !== null);
}

function describeDrift(d: NetworkDrift): string {
  const what = [
    d.bridgeMissing && 'its bridge',
    d.bridgeDown && 'its bridge up',
    ...d.gateways.map((g) => `${g.address}/${g.prefix}`),
    ...d.ports.map((p) => `port ${p.link.ifname}`),
  ].filter(Boolean);
  return `network ${d.network}: ${what.join(', ')}`;
}

/** One network's links made whole again, judged afresh under the networks lock (a `network rm` may have won). */
async function repairNetwork(ctx: CoreContext, name: string): Promise<NetworkDrift | null> {
  const net = findNetwork(ctx.store, name);
  if (!net || net.name !== name) return null;
  const d = (await linkDrift(ctx)).find((x) => x.network === name);
  if (!d) return null;
  if (d.bridgeMissing) await restoreNetworkLinks(ctx, net);
  else for (const gw of gatewaysOf(net)) await setHostAddress(net.hostIf, gw); // replace: also brings it up
  const ports = d.bridgeMissing ? ((await linkDrift(ctx)).find((x) => x.network === name)?.ports ?? []) : d.ports;
  for (const { link, rec } of ports) {
    await plugIntoBridge(link, net.hostIf, ctx.log);
    if (listPorts(ctx.store, rec.id).length) setHairpin(link.ifname, ctx.log);
  }
  return { ...d, ports };
}

/** Every bridge network's links put back where they drifted; what was repaired, one line per network. */
export async function healLinks(ctx: CoreContext): Promise<string[]> {
  const drifts = await linkDrift(ctx);
  if (!drifts.length) return [];
  return withLock(ctx.store.stateDir, 'networks', async () => {
    const done: string[] = [];
    for (const d of drifts) {
      const repaired = await repairNetwork(ctx, d.network);
      if (repaired) done.push(describeDrift(repaired));
    }
    return done;
  });
}
