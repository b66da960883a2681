/**
 * phys: the host NIC itself moved into the guest (pipework's --direct-phys), back under its own name
 * at detach. Only the NIC that was moved in ever comes back: the guest may rename it and give a
 * link of its own the NIC's name and MAC, and a link moved to the host under the NIC's name would
 * take the NIC's place there (its configuration, its firewall rules).
 */
import { childTempName } from '../../model/host-names.js';
import { PipewrightError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { logAsIp } from '../rtnetlink/ip-words.js';
import { ifla } from '../rtnetlink/attrs.js';
import { hostIndex, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket, withNetnsFd, withNetnsSocket, type RtSocket } from '../rtnetlink/sockets.js';
import { ownNetns } from '../netns/netns.js';
import { ARPHRD_ETHER, hostLinkExists } from '../link-state/sysfs.js';
import type { LinkDriver, LinkRef } from './driver.js';
import { findOwnLink, identityOf, linkAt, type SeenLink } from './identity.js';
import { inGuest } from './in-guest.js';

export const phys: LinkDriver = {
  kind: 'phys',
  onBridge: false,
  takesShim: false,
  serves: (_host, spec) => spec.directPhys,
  plan(host, spec) {
    if (!host) throw new PipewrightError(`no host interface ${spec.hostIf} to move into the guest`);
    if (host.type !== ARPHRD_ETHER || host.bridge) {
      throw new PipewrightError(
        `host interface ${spec.hostIf} is not an Ethernet NIC (link type ${host.type}); only a NIC can be moved into a guest`,
      );
    }
    // A moved NIC keeps its own MAC unless one is given.
    return { mtu: host.mtu, mac: host.mac, hostEnd: false };
  },
  describe: (plan, netns) => [
    [
      'link',
      'set',
      'dev',
      plan.hostIf,
      'netns',
      netns,
      'name',
      plan.ifname,
      'mtu',
      String(plan.mtu),
      'address',
      plan.mac,
    ],
  ],
  async create(plan, netnsPath, log) {
    logAsIp(log, this.describe(plan, netnsPath));
    const nic = (await linkAt(hostSocket(), hostIndex(plan.hostIf)))!;
    await withNetnsFd(netnsPath, (fd) =>
      setLink(hostSocket(), nic.index, [
        ifla.netnsFd(fd),
        ifla.ifname(plan.ifname),
        ifla.mtu(plan.mtu),
        ifla.address(plan.mac),
      ]),
    );
    // Its index in the guest (a move keeps it unless taken there), checked against its permanent address.
    const moved = await withNetnsSocket(netnsPath, (sock) =>
      findOwnLink(sock, { ...plan, ...identityOf(nic) }, plan.ifname),
    );
    if (!moved)
      throw new PipewrightError(
        `${plan.hostIf} is not in the guest as ${plan.ifname} after the move; the guest changed it meanwhile`,
      );
    return identityOf(moved);
  },
  remove: (link, netnsPath, log) =>
    inGuest(netnsPath, async (sock) => {
      const nic = await findOwnLink(sock, link);
      if (nic) await moveHome(sock, nic, link, netnsPath!, log);
      else if (!(await backHome(link, log))) throw new PipewrightError(notInGuest(link));
    }),
  check: (link) => (hostLinkExists(link.hostIf) ? `${link.hostIf} is back on the host` : null),
};

const notInGuest = (link: LinkRef) =>
  `the NIC moved in from ${link.hostIf} is not in the guest as it was moved in (as ${link.ifname}, index ${link.linkIndex ?? 'unrecorded'}); ` +
  `nothing was moved to the host: find it in the guest (ip link), or detach again once the guest is gone (the kernel then returns it)`;

/**
 * The NIC is on the host already: under its own name (moved back by hand), or under the name it
 * lands with (moveHome killed before the rename), which it then leaves.
 */
async function backHome(link: LinkRef, log?: StepLog): Promise<boolean> {
  for (const name of [link.hostIf, childTempName(link.hostIf)]) {
    const nic = hostLinkExists(name) ? await findOwnLink(hostSocket(), link, name) : null;
    if (!nic) continue;
    if (name !== link.hostIf) await nameHome(nic, link, log);
    return true;
  }
  return false;
}

async function nameHome(nic: SeenLink, link: LinkRef, log?: StepLog): Promise<void> {
  logAsIp(log, [['link', 'set', 'dev', nic.name, 'name', link.hostIf]]);
  await setLink(hostSocket(), nic.index, [ifla.ifname(link.hostIf)]);
}

/**
 * Moves the NIC to the host under a name of pipewright's, checks there that it is the NIC (the
 * guest could swap links between the check in the guest and the move), and only then gives it
 * its own name; anything else goes back to the guest.
 */
async function moveHome(sock: RtSocket, nic: SeenLink, link: LinkRef, netnsPath: string, log?: StepLog): Promise<void> {
  const landing = childTempName(link.hostIf);
  logAsIp(log, [['link', 'set', 'dev', nic.name, 'netns', ownNetns(), 'name', landing]], netnsPath);
  await withNetnsFd(ownNetns(), (fd) => setLink(sock, nic.index, [ifla.netnsFd(fd), ifla.ifname(landing)]));
  const landed = await findOwnLink(hostSocket(), link, landing);
  if (!landed) {
    await withNetnsFd(netnsPath, (fd) => setLink(hostSocket(), hostIndex(landing), [ifla.netnsFd(fd)]));
    throw new PipewrightError(notInGuest(link));
  }
  await nameHome(landed, link, log);
}
