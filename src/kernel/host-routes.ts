/**
 * The host's own routes, read as Docker reads them before it takes a network's pool: a pool it is
 * given without --subnet that overlaps a route of the host's main table is one it refuses, and asks
 * its IPAM driver again for another (forever, when the driver has only that one).
 */
import { contains } from '../model/address.js';
import { dumpLinks, dumpRoutes, linkName } from './netlink/rtnl.js';
import { hostSocket } from './netlink/sockets.js';

export interface HostRoute {
  /** "a.b.c.d/len" */
  dst: string;
  dev: string;
}

/** Whether two IPv4 CIDRs share an address: one holds the other's first. */
function overlap(a: string, b: string): boolean {
  const [[na, pa], [nb, pb]] = [a, b].map((c) => c.split('/'));
  return contains(na!, Number(pa), nb!) || contains(nb!, Number(pb), na!);
}

/** A route of the host's main IPv4 table (but the default route) overlapping `cidr`, or null. */
export async function hostRouteOverlapping(cidr: string): Promise<HostRoute | null> {
  const sock = hostSocket();
  const route = (await dumpRoutes(sock, 4)).find((r) => r.dst !== null && overlap(r.dst, cidr));
  if (!route) return null;
  const link = (await dumpLinks(sock)).find((l) => l.index === route.oif);
  return { dst: route.dst!, dev: link ? linkName(link) : `ifindex ${route.oif}` };
}
