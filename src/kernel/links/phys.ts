/** phys: the host NIC itself moved into the guest (pipework's --direct-phys), back under its own name at detach. */
import { PipewrightError } from '../../util/errors.js';
import { logAsIp } from '../ip-words.js';
import { ifla } from '../netlink/attrs.js';
import { hostIndex, setLink } from '../netlink/rtnl.js';
import { hostSocket, withNetnsFd } from '../netlink/sockets.js';
import { ownNetns } from '../netns.js';
import { ARPHRD_ETHER, hostLinkExists } from '../sysfs.js';
import type { LinkDriver } from './driver.js';
import { removeInGuest } from './in-guest.js';

export const phys: LinkDriver = {
  kind: 'phys',
  onBridge: false,
  takesShim: false,
  serves: (_host, spec) => spec.directPhys,
  plan(host, spec) {
    if (!host) throw new PipewrightError(`no host interface ${spec.hostIf} to move into the guest`);
    if (host.type !== ARPHRD_ETHER || host.bridge) {
      throw new PipewrightError(`host interface ${spec.hostIf} is not an Ethernet NIC (link type ${host.type}); only a NIC can be moved into a guest`);
    }
    // A moved NIC keeps its own MAC unless one is given.
    return { mtu: host.mtu, mac: host.mac, hostEnd: false };
  },
  describe: (plan, netns) => [['link', 'set', 'dev', plan.hostIf, 'netns', netns, 'name', plan.ifname, 'mtu', String(plan.mtu), 'address', plan.mac]],
  async create(plan, netnsPath, log) {
    logAsIp(log, this.describe(plan, netnsPath));
    await withNetnsFd(netnsPath, (fd) =>
      setLink(hostSocket(), hostIndex(plan.hostIf), [ifla.netnsFd(fd), ifla.ifname(plan.ifname), ifla.mtu(plan.mtu), ifla.address(plan.mac)]),
    );
  },
  remove: (link, netnsPath, log) =>
    removeInGuest(
      link,
      netnsPath,
      [['link', 'set', 'dev', link.ifname, 'netns', ownNetns(), 'name', link.hostIf]],
      (sock, index) => withNetnsFd(ownNetns(), (fd) => setLink(sock, index, [ifla.netnsFd(fd), ifla.ifname(link.hostIf)])),
      log,
    ),
  check: (link) => (hostLinkExists(link.hostIf) ? `${link.hostIf} is back on the host` : null),
};
