/**
 * Source-based routing for one guest interface, as the CNI sbr plugin does it: the interface's
 * routes (its subnets, its gateway's default route, its --route's) also in a table of its own,
 * and a rule per address sending traffic from that address to the table, so replies leave by the
 * interface they came in on whatever the main table's default route. The table is the
 * attachment's (sbrTable), its rules at priority SBR_PREF.
 */
import { routesOf, SBR_PREF, type AttachmentPlan } from '../../model/attachment.js';
import { fromBig, prefixBounds } from '../../model/ipmath.js';
import type { StepLog } from '../../util/log.js';
import { logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { addRule, deleteRule, replaceRoute, type RouteSpec, type RuleSpec } from '../rtnetlink/rtnl.js';
import { withNetnsSocket, type RtSocket } from '../rtnetlink/sockets.js';

type Side = Pick<AttachmentPlan, 'ifname' | 'addresses' | 'routes'>;

function steps(plan: Side, index: number, table: number): { routes: RouteSpec[]; rules: RuleSpec[] } {
  const subnets: RouteSpec[] = plan.addresses.map((a) => ({
    family: a.family,
    dst: `${fromBig(prefixBounds(a.address, a.prefix, a.family)[0], a.family)}/${a.prefix}`,
    oif: index,
    table,
  }));
  const others: RouteSpec[] = routesOf(plan).map((r) => ({
    family: r.family,
    dst: r.dst === 'default' ? null : r.dst,
    via: r.via,
    oif: index,
    table,
  }));
  const rules = plan.addresses.map((a) => ({ family: a.family, src: a.address, table, pref: SBR_PREF }));
  return { routes: [...subnets, ...others], rules };
}

function words(plan: Side, s: ReturnType<typeof steps>): IpWords[] {
  const zero = (f: 4 | 6) => (f === 4 ? '0.0.0.0/0' : '::/0');
  return [
    ...s.routes.map((r) => [
      'route',
      'replace',
      r.dst ?? zero(r.family),
      ...(r.via ? ['via', r.via] : []),
      'dev',
      plan.ifname,
      'table',
      String(r.table),
    ]),
    ...s.rules.map((r) => ['rule', 'add', 'from', r.src!, 'table', String(r.table), 'pref', String(r.pref)]),
  ];
}

/** The interface's table and rules, on a socket already in the guest (configureGuest's). */
export async function addSourceRouting(
  sock: RtSocket,
  plan: Side,
  index: number,
  table: number,
  netnsPath: string,
  log?: StepLog,
): Promise<void> {
  const s = steps(plan, index, table);
  logAsIp(log, words(plan, s), netnsPath);
  for (const r of s.routes) await replaceRoute(sock, r);
  for (const r of s.rules) await addRule(sock, r);
}

/**
 * The rules of an attachment's table gone from the guest (its routes go with the interface): at
 * detach, and before a restore in a namespace that may still hold them. One match at a time,
 * for each family, as many as the interface had addresses.
 */
export async function removeSourceRouting(netnsPath: string, table: number, log?: StepLog): Promise<void> {
  logAsIp(log, [['rule', 'flush', 'table', String(table)]], netnsPath);
  await withNetnsSocket(netnsPath, async (sock) => {
    for (const family of [4, 6] as const) {
      for (let n = 0; n < 256 && (await deleteRule(sock, { family, table, pref: SBR_PREF })); n++);
    }
  });
}
