/** veth: a pair whose host end joins a bridge and whose peer is born inside the guest. */
import { existsSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import type { AttachmentPlan } from '../../model/attachment.js';
import type { StepLog } from '../../util/log.js';
import { deleteLinkWords, logAsIp } from '../rtnetlink/ip-words.js';
import { ifla, vethLinkInfo } from '../rtnetlink/attrs.js';
import { createFinishedLink, deleteHostLink, hostIndex, newLink, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket, withNetnsFd } from '../rtnetlink/sockets.js';
import { hostLinkExists } from '../link-state/sysfs.js';
import { NO_IDENTITY, type LinkDriver, type LinkRef } from './driver.js';

const DEFAULT_MTU = 1500;

function guestEndWords(plan: AttachmentPlan, netns: string): string[] {
  return ['name', plan.ifname, 'mtu', String(plan.mtu), 'address', plan.mac, 'netns', netns];
}

export const veth: LinkDriver = {
  kind: 'veth',
  onBridge: true,
  takesShim: false,
  serves: (host) => host === null || host.bridge,
  plan: (host) => ({ mtu: host?.mtu ?? DEFAULT_MTU, hostEnd: true }),
  describe: (plan, netns) => [
    [
      'link',
      'add',
      'name',
      plan.hostLink!,
      'mtu',
      String(plan.mtu),
      'type',
      'veth',
      'peer',
      ...guestEndWords(plan, netns),
    ],
    ['link', 'set', plan.hostLink!, 'master', plan.hostIf, 'up'],
  ],
  async create(plan, netnsPath, log) {
    logAsIp(log, this.describe(plan, netnsPath));
    const sock = hostSocket();
    const guestEnd = (fd: number) => vethLinkInfo({ ifname: plan.ifname, mtu: plan.mtu, mac: plan.mac, netnsFd: fd });
    await createFinishedLink(
      plan.hostLink!,
      () =>
        withNetnsFd(netnsPath, (fd) =>
          newLink(sock, plan.hostLink!, [ifla.ifname(plan.hostLink!), ifla.mtu(plan.mtu), guestEnd(fd)]),
        ),
      () => setLink(sock, hostIndex(plan.hostLink!), [ifla.master(hostIndex(plan.hostIf))], true),
    );
    return NO_IDENTITY;
  },
  /**
   * Deleting the host end deletes both (a name only pipewright gives in the host); a guest that
   * went away took its end along.
   */
  async remove(link: LinkRef, _netnsPath: string | null, log?: StepLog) {
    if (!link.hostLink || !hostLinkExists(link.hostLink)) return;
    logAsIp(log, [deleteLinkWords(link.hostLink)]);
    await deleteHostLink(link.hostLink);
  },
  check(link) {
    const master = `/sys/class/net/${link.hostLink}/master`;
    if (!link.hostLink || !hostLinkExists(link.hostLink)) return `host end ${link.hostLink} is missing`;
    if (!existsSync(master) || basename(readlinkSync(master)) !== link.hostIf)
      return `host end ${link.hostLink} is not on ${link.hostIf}`;
    return null;
  },
};
