/**
 * Publishing ports: the mapping is recorded (refusing a host port already published, naming its
 * owner) and the rules are left to the firewall change that follows the store.
 */
import { PipewrightError } from '../util/errors.js';
import { readLink } from '../net/link-state/link-state.js';
import { hostLinkExists } from '../net/link-state/sysfs.js';
import { contains, parseCidr, type Family, type IpConfig } from '../model/address.js';
import { poolsOf, publishOf, staticAddresses, type AttachSpec } from '../model/attachment.js';
import { conflictingPort, findNetwork, insertPort } from '../db/networks.js';
import type { CoreContext } from './context.js';
import type { Store } from '../db/store.js';
import type { PortState } from '../model/firewall-state.js';
import {
  familyOf,
  formatPublish,
  matchedHostIp,
  publishFamilies,
  type PortSpec,
  type Proto,
} from '../model/publish.js';
import { fromBig, prefixBounds } from '../model/ipmath.js';

type PortRow = Omit<PortState, 'bridge'>;

/**
 * The rows a guest's published ports become: one per mapping and family, on every family the
 * mapping names and the guest has an address of (Docker's and netavark's dual-stack -p).
 */
export function portRows(addresses: IpConfig[], ports: PortSpec[]): PortRow[] {
  const guest = addresses.map((a) => a.family);
  return ports.flatMap((p) =>
    familiesFor(p, guest).map((family) => {
      const ctr = addresses.find((a) => a.family === family)!;
      const ctrSubnet = `${fromBig(prefixBounds(ctr.address, ctr.prefix, family)[0], family)}/${ctr.prefix}`;
      const { proto, hostPort, hostPortEnd, ctrPort } = p;
      return { proto, hostIp: matchedHostIp(p.hostIp), hostPort, hostPortEnd, ctrIp: ctr.address, ctrSubnet, ctrPort };
    }),
  );
}

/** The families a mapping is published on, given the guest's; refused when that is none. */
function familiesFor(p: PortSpec, guest: Family[]): Family[] {
  const families = publishFamilies(p).filter((f) => guest.includes(f));
  if (!families.length) {
    const want = p.hostIp ? `an IPv${familyOf(p.hostIp)}` : 'an';
    throw new PipewrightError(`publishing ${formatPublish(p)} needs ${want} address on the guest interface`);
  }
  return families;
}

/** A row as -p writes it; an IPv6 row for every address shows [::], as `docker port` does. */
export function publishedAs(row: Omit<PortRow, 'ctrSubnet'>): string {
  return formatPublish({ ...row, hostIp: row.hostIp || (familyOf(row.ctrIp) === 6 ? '::' : '') });
}

/** Records the guest's published ports (inside the caller's transaction). */
export function recordPorts(
  store: Store,
  attachmentId: number,
  guestName: string,
  bridge: string,
  addresses: IpConfig[],
  ports: PortSpec[],
): void {
  for (const row of portRows(addresses, ports)) {
    const taken = conflictingPort(store, row, familyOf(row.ctrIp));
    if (taken) {
      const wanted = publishedAs(row).split(':').slice(0, -1).join(':');
      throw new PipewrightError(
        `host port ${wanted}/${row.proto} is already published by ${taken.guestName} (${publishedAs(taken)})`,
      );
    }
    insertPort(store, { attachmentId, guestName, bridge, ...row });
  }
}

/** The first host port in from..to that nothing publishes yet on the address's families (Docker's `-p 80`, or a host port range). */
export function freeHostPort(store: Store, proto: Proto, hostIp: string, from: number, to: number): number {
  const families = publishFamilies({ hostIp });
  const free = (port: number) =>
    families.every(
      (f) => !conflictingPort(store, { proto, hostIp: matchedHostIp(hostIp), hostPort: port, hostPortEnd: port }, f),
    );
  for (let port = from; port <= to; port++) if (free(port)) return port;
  throw new PipewrightError(`no ${proto} host port in ${from}-${to} is free to publish`);
}

/** The subnets the spec's guest will be in ("<network>/<prefix>"), as far as they are known before leasing. */
async function guestSubnets(ctx: CoreContext, spec: AttachSpec): Promise<{ address: string; prefix: number }[]> {
  const pools = await Promise.all(poolsOf(spec).map((name) => ctx.ipam.pool(name)));
  return [...staticAddresses(spec), ...pools.map((p) => ({ address: parseCidr(p.subnet).address, prefix: p.prefix }))];
}

/**
 * Published ports are DNATed by the host, so the host must route to the guest: the bridge is a
 * pipewright network's (it holds the pool's gateway) or already holds an address in the guest's
 * subnet. Otherwise the port would never answer: refused before anything is changed.
 */
export async function checkPublishable(ctx: CoreContext, spec: AttachSpec): Promise<void> {
  if (!spec.publish.length) return;
  const subnets = await guestSubnets(ctx, spec);
  // Each mapping needs a guest address of a family it names (DHCP leases IPv4).
  const families = [...subnets.map((net) => familyOf(net.address)), ...(spec.dhcp ? [4 as const] : [])];
  for (const p of publishOf(spec)) familiesFor(p, families);
  if (spec.dhcp || findNetwork(ctx.store, spec.hostIf)) return;
  const held = hostLinkExists(spec.hostIf) ? ((await readLink(spec.hostIf, undefined))?.addresses ?? []) : [];
  const routed = subnets.every((net) =>
    held.some((cidr) => contains(net.address, net.prefix, parseCidr(cidr).address)),
  );
  if (!routed) {
    throw new PipewrightError(
      `-p needs the host to reach the guest, and ${spec.hostIf} has no address in its subnet: ` +
        `create a network on it (pipewright network create <name> --bridge ${spec.hostIf} --pool <pool>) or give ${spec.hostIf} an address in that subnet`,
    );
  }
}
