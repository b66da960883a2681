/**
 * The host's own routes, read as Docker reads them before it takes a network's pool: a pool it is
 * given without --subnet that overlaps a route of the host's main table is one it refuses, and asks
 * its IPAM driver again for another (forever, when the driver has only that one).
 */
import { parseCidr } from '../../model/address.js';
import { overlaps, prefixBounds } from '../../model/ipmath.js';
import { dumpLinks, dumpRoutes, linkName } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';

export interface HostRoute {
  /** "a.b.c.d/len" */
  dst: string;
  dev: string;
}

const bounds = (text: string) => {
  const cidr = parseCidr(text);
  return prefixBounds(cidr.address, cidr.prefix, 4);
};

/** A route of the host's main IPv4 table (but the default route) overlapping `cidr`, or null. */
export async function hostRouteOverlapping(cidr: string): Promise<HostRoute | null> {
  const sock = hostSocket();
  const route = (await dumpRoutes(sock, 4)).find((r) => r.dst !== null && overlaps(bounds(r.dst), bounds(cidr)));
  if (!route) return null;
  const link = (await dumpLinks(sock)).find((l) => l.index === route.oif);
  return { dst: route.dst!, dev: link ? linkName(link) : `ifindex ${route.oif}` };
}
