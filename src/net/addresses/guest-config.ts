/**
 * Inside the guest, over a socket opened in its namespace: lo up; arp_notify, so coming up
 * announces the address (gratuitous ARP); addresses before the link comes up (IPv6 ones without
 * DAD, usable at once); routes after up (a gateway must be reachable to be accepted).
 */
import type { RouteSpec } from '../../model/address.js';
import { routesOf, type AttachmentPlan } from '../../model/attachment.js';
import type { StepLog } from '../../util/log.js';
import { addressWords } from './addresses.js';
import { logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { arpNotifySpec, ifla } from '../rtnetlink/attrs.js';
import { addAddress, deleteRoute, indexIn, replaceRoute, setLink } from '../rtnetlink/rtnl.js';
import { inNetns, withNetnsSocket } from '../rtnetlink/sockets.js';
import { addSourceRouting } from './source-routes.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

type GuestSide = Pick<AttachmentPlan, 'ifname' | 'addresses' | 'routes' | 'metric'> & { sbrTable?: number | null };

function routeWords(verb: string, r: RouteSpec, ifname: string, metric: number | null): IpWords {
  // `ip -batch` takes no -4/-6 per line: spell "default" as the family's zero prefix.
  const dst = r.dst === 'default' ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : r.dst;
  return [
    'route',
    verb,
    dst,
    ...(r.via ? ['via', r.via] : []),
    'dev',
    ifname,
    ...(metric ? ['metric', String(metric)] : []),
  ];
}

export function configureGuestWords(plan: GuestSide): IpWords[] {
  const cmds: IpWords[] = [['link', 'set', 'lo', 'up']];
  for (const a of plan.addresses) cmds.push(addressWords(a, plan.ifname));
  cmds.push(['link', 'set', plan.ifname, 'up']);
  for (const r of routesOf(plan)) cmds.push(routeWords('replace', r, plan.ifname, plan.metric));
  return cmds;
}

/** The kernel's metric for a route added without one: IPv4's 0, IPv6's 1024 (a delete must name it). */
const kernelMetric = (family: 4 | 6, metric: number | null) => metric ?? (family === 6 ? 1024 : 0);

/**
 * An interface's routes moved to another metric: each added with the new one, then the old one
 * deleted, so the guest is never without them.
 */
export async function tuneRouteMetric(
  ifname: string,
  routes: RouteSpec[],
  from: number | null,
  to: number | null,
  netnsPath: string,
  log?: StepLog,
): Promise<void> {
  // IPv6 without a metric is 1024 to the kernel: the same route as metric 1024, nothing to move.
  routes = routes.filter((r) => kernelMetric(r.family, from) !== kernelMetric(r.family, to));
  logAsIp(
    log,
    routes.flatMap((r) => [
      routeWords('replace', r, ifname, to),
      routeWords('delete', r, ifname, kernelMetric(r.family, from)),
    ]),
    netnsPath,
  );
  await withNetnsSocket(netnsPath, async (sock) => {
    const oif = await indexIn(sock, ifname);
    for (const r of routes) {
      const route = { family: r.family, dst: r.dst === 'default' ? null : r.dst, via: r.via, oif };
      await replaceRoute(sock, { ...route, metric: to });
      await deleteRoute(sock, { ...route, metric: kernelMetric(r.family, from) });
    }
  });
}

/**
 * Docker turns IPv6 off in a --net=none container's namespace (new interfaces inherit
 * disable_ipv6=1, and adding an IPv6 address fails with EACCES): turn it on for this interface
 * only, when it is to hold an IPv6 address.
 */
function enableIpv6(ifname: string, netnsPath: string, log?: StepLog): void {
  const path = `/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`;
  const off = inNetns(netnsPath, () => existsSync(path) && readFileSync(path, 'utf8').trim() === '1');
  if (!off) return;
  log?.step(
    `nsenter --net=${netnsPath} sysctl -w net.ipv6.conf.${ifname}.disable_ipv6=0  (IPv6 was off in this guest)`,
  );
  inNetns(netnsPath, () => writeFileSync(path, '0'));
}

/**
 * Announces the interface's address once more (gratuitous ARP) when `when` says so: setting the
 * MAC it already has makes the kernel notify an address change, which arp_notify answers. For a
 * veth whose bridge port was not forwarding yet when the guest end came up (the first one was lost).
 */
export interface Reannounce {
  mac: string;
  when: () => Promise<boolean>;
}

export async function configureGuest(
  plan: GuestSide,
  netnsPath: string,
  log?: StepLog,
  reannounce?: Reannounce,
): Promise<void> {
  logAsIp(log, configureGuestWords(plan), netnsPath);
  if (plan.addresses.some((a) => a.family === 6)) enableIpv6(plan.ifname, netnsPath, log);
  await withNetnsSocket(netnsPath, async (sock) => {
    await setLink(sock, await indexIn(sock, 'lo'), [], true);
    const index = await indexIn(sock, plan.ifname);
    if (plan.addresses.some((a) => a.family === 4)) await setLink(sock, index, [arpNotifySpec()]);
    for (const a of plan.addresses) await addAddress(sock, index, a);
    await setLink(sock, index, [], true);
    for (const r of routesOf(plan)) {
      const dst = r.dst === 'default' ? null : r.dst;
      await replaceRoute(sock, { family: r.family, dst, via: r.via, oif: index, metric: plan.metric });
    }
    if (plan.sbrTable) await addSourceRouting(sock, plan, index, plan.sbrTable, netnsPath, log);
    // The same socket: a second one in the guest's namespace would cost as much as this whole step.
    if (reannounce && (await reannounce.when())) {
      logAsIp(log, [['link', 'set', plan.ifname, 'address', reannounce.mac]], netnsPath);
      await setLink(sock, index, [ifla.address(reannounce.mac)]);
    }
  });
}
