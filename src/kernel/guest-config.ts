/**
 * Inside the guest, over a socket opened in its namespace: lo up; arp_notify, so coming up
 * announces the address (gratuitous ARP); addresses before the link comes up (IPv6 ones without
 * DAD, usable at once); routes after up (a gateway must be reachable to be accepted).
 */
import { routesOf, type AttachmentPlan } from '../model/attachment.js';
import type { StepLog } from '../util/log.js';
import { addAddress, addressWords } from './addresses.js';
import { logAsIp, type IpWords } from './ip-words.js';
import { arpNotifySpec } from './netlink/attrs.js';
import { AF, CREATE_REPLACE, indexIn, ipBytes, UP } from './netlink/rtnl.js';
import { withNetnsSocket } from './netlink/sockets.js';

const RT_TABLE_MAIN = 254;

type GuestSide = Pick<AttachmentPlan, 'ifname' | 'addresses' | 'routes'>;

export function configureGuestWords(plan: GuestSide): IpWords[] {
  const cmds: IpWords[] = [['link', 'set', 'lo', 'up']];
  for (const a of plan.addresses) cmds.push(addressWords(a, plan.ifname));
  cmds.push(['link', 'set', plan.ifname, 'up']);
  for (const r of routesOf(plan)) {
    // `ip -batch` takes no -4/-6 per line: spell "default" as the family's zero prefix.
    const dst = r.dst === 'default' ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : r.dst;
    cmds.push(['route', 'replace', dst, ...(r.via ? ['via', r.via] : []), 'dev', plan.ifname]);
  }
  return cmds;
}

export async function configureGuest(plan: GuestSide, netnsPath: string, log?: StepLog): Promise<void> {
  logAsIp(log, configureGuestWords(plan), netnsPath);
  await withNetnsSocket(netnsPath, async (sock) => {
    await sock.setLink({ index: await indexIn(sock, 'lo'), ...UP }, {});
    const index = await indexIn(sock, plan.ifname);
    if (plan.addresses.some((a) => a.family === 4)) await sock.setLink({ index }, { afSpec: arpNotifySpec() });
    for (const a of plan.addresses) await addAddress(sock, index, a);
    await sock.setLink({ index, ...UP }, {});
    for (const r of routesOf(plan)) {
      const [dst, len] = r.dst === 'default' ? [null, 0] : [r.dst.split('/')[0], Number(r.dst.split('/')[1])];
      await sock.newRoute(
        { family: AF[r.family], dstLen: len, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: r.via ? 'UNIVERSE' : 'LINK', type: 'UNICAST' },
        { ...(dst ? { dst: ipBytes(dst) } : {}), ...(r.via ? { gateway: ipBytes(r.via) } : {}), oif: index },
        CREATE_REPLACE,
      );
    }
  });
}
