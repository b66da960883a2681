/**
 * macvlan: a child of an Ethernet NIC, born inside the guest. Also the host's own "shim" macvlan on
 * the parent: the kernel isolates a parent from its children, so the host needs one to reach them.
 */
import type { IpConfig } from '../../model/address.js';
import { ARPHRD_ETHER, hostLinkExists } from '../sysfs.js';
import { UsageError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { addressWords, setHostAddress } from '../addresses.js';
import { deleteLinkWords, logAsIp, type IpWords } from '../ip-words.js';
import { ifla, macvlanLinkInfo } from '../netlink/attrs.js';
import { createFinishedLink, deleteHostLink, delLink, hostIndex, newLink } from '../netlink/rtnl.js';
import { hostSocket, withNetnsFd } from '../netlink/sockets.js';
import type { LinkDriver } from './driver.js';
import { removeInGuest } from './in-guest.js';

export const macvlan: LinkDriver = {
  kind: 'macvlan',
  onBridge: false,
  takesShim: true,
  serves: (host) => host !== null && host.type === ARPHRD_ETHER && !host.bridge,
  plan(host) {
    if (!host) throw new UsageError('a macvlan needs an existing parent interface');
    return { mtu: host.mtu, hostEnd: false };
  },
  describe: (plan, netns) => [
    [
      'link',
      'add',
      'link',
      plan.hostIf,
      'name',
      plan.ifname,
      'mtu',
      String(plan.mtu),
      'address',
      plan.mac,
      'netns',
      netns,
      'type',
      'macvlan',
      'mode',
      plan.macvlanMode ?? 'bridge',
    ],
  ],
  async create(plan, netnsPath, log) {
    logAsIp(log, this.describe(plan, netnsPath));
    await withNetnsFd(netnsPath, (fd) =>
      newLink(hostSocket(), plan.ifname, [
        ifla.ifname(plan.ifname),
        ifla.mtu(plan.mtu),
        ifla.address(plan.mac),
        ifla.link(hostIndex(plan.hostIf)),
        ifla.netnsFd(fd),
        macvlanLinkInfo(plan.macvlanMode ?? 'bridge'),
      ]),
    );
  },
  async remove(link, netnsPath, log) {
    // A Docker endpoint's macvlan waits in the host under its host link's name (before Docker moves it, after Leave).
    if (link.hostLink && hostLinkExists(link.hostLink)) {
      logAsIp(log, [deleteLinkWords(link.hostLink)]);
      await deleteHostLink(link.hostLink);
    }
    await removeInGuest(link, netnsPath, [deleteLinkWords(link.ifname)], (sock) => delLink(sock, link.ifname), log);
  },
  check: (link) => (hostLinkExists(link.hostIf) ? null : `parent ${link.hostIf} is missing`),
};

export function createShimWords(parent: string, shim: string, address: IpConfig): IpWords[] {
  return [['link', 'add', 'link', parent, 'name', shim, 'type', 'macvlan', 'mode', 'bridge'], addressWords(address, shim), ['link', 'set', shim, 'up']];
}

/** The host's own macvlan on a parent (bridge mode), with an address; nothing is left if a step fails. */
export async function createShim(parent: string, shim: string, address: IpConfig, log?: StepLog): Promise<void> {
  logAsIp(log, createShimWords(parent, shim, address));
  await createFinishedLink(
    shim,
    () => newLink(hostSocket(), shim, [ifla.ifname(shim), ifla.link(hostIndex(parent)), macvlanLinkInfo('bridge')]),
    () => setHostAddress(shim, address),
  );
}
