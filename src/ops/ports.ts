/**
 * Publishing ports: the mapping is recorded (refusing a host port already published, naming its
 * owner) and the rules are left to the firewall change that follows the store.
 */
import { PipewrightError } from '../util/errors.js';
import { readLink } from '../net/link-state/link-state.js';
import { hostLinkExists } from '../net/link-state/sysfs.js';
import { contains, parseCidr } from '../model/address.js';
import { poolsOf, staticAddresses, type AttachSpec } from '../model/attachment.js';
import { conflictingPort, findNetwork, insertPort } from '../db/networks.js';
import type { CoreContext } from './context.js';
import type { Store } from '../db/store.js';
import type { IpConfig } from '../model/address.js';
import { formatPublish, type PortSpec, type Proto } from '../model/publish.js';
import { fromBig, prefixBounds } from '../model/ipmath.js';

/** Records the guest's published ports (inside the caller's transaction). */
export function recordPorts(
  store: Store,
  attachmentId: number,
  guestName: string,
  bridge: string,
  addresses: IpConfig[],
  ports: PortSpec[],
): void {
  if (ports.length === 0) return; // an IPv6-only guest publishes nothing, and needs no IPv4 address for that
  const v4 = addresses.find((a) => a.family === 4);
  if (!v4) throw new PipewrightError('publishing ports needs an IPv4 address on the guest interface');
  const ctrSubnet = `${fromBig(prefixBounds(v4.address, v4.prefix, 4)[0], 4)}/${v4.prefix}`;
  for (const p of ports) {
    const taken = conflictingPort(store, p);
    if (taken) {
      throw new PipewrightError(
        `host port ${formatPublish(p).split(':').slice(0, -1).join(':')}/${p.proto} is already published by ${taken.guestName} (${formatPublish(taken)})`,
      );
    }
    insertPort(store, {
      attachmentId,
      guestName,
      bridge,
      proto: p.proto,
      hostIp: p.hostIp,
      hostPort: p.hostPort,
      hostPortEnd: p.hostPortEnd,
      ctrIp: v4.address,
      ctrSubnet,
      ctrPort: p.ctrPort,
    });
  }
}

/** The first host port in from..to that nothing publishes yet (Docker's `-p 80`, or a host port range). */
export function freeHostPort(store: Store, proto: Proto, hostIp: string, from: number, to: number): number {
  for (let port = from; port <= to; port++) {
    if (!conflictingPort(store, { proto, hostIp, hostPort: port, hostPortEnd: port })) return port;
  }
  throw new PipewrightError(`no ${proto} host port in ${from}-${to} is free to publish`);
}

/** The IPv4 subnets the spec's guest will be in ("<network>/<prefix>"), as far as they are known before leasing. */
async function guestSubnets(ctx: CoreContext, spec: AttachSpec): Promise<{ address: string; prefix: number }[]> {
  const statics = staticAddresses(spec).filter((a) => a.family === 4);
  const pools = await Promise.all(poolsOf(spec).map((name) => ctx.ipam.pool(name)));
  return [
    ...statics,
    ...pools.filter((p) => p.family === 4).map((p) => ({ address: parseCidr(p.subnet).address, prefix: p.prefix })),
  ];
}

/**
 * Published ports are DNATed by the host, so the host must route to the guest: the bridge is a
 * pipewright network's (it holds the pool's gateway) or already holds an address in the guest's
 * subnet. Otherwise the port would never answer: refused before anything is changed.
 */
export async function checkPublishable(ctx: CoreContext, spec: AttachSpec): Promise<void> {
  if (!spec.publish.length || spec.dhcp || findNetwork(ctx.store, spec.hostIf)) return;
  const held = hostLinkExists(spec.hostIf) ? ((await readLink(spec.hostIf, undefined))?.addresses ?? []) : [];
  const routed = (await guestSubnets(ctx, spec)).every((net) =>
    held.some((cidr) => contains(net.address, net.prefix, parseCidr(cidr).address)),
  );
  if (!routed) {
    throw new PipewrightError(
      `-p needs the host to reach the guest, and ${spec.hostIf} has no address in its subnet: ` +
        `create a network on it (pipewright network create <name> --bridge ${spec.hostIf} --pool <pool>) or give ${spec.hostIf} an address in that subnet`,
    );
  }
}
