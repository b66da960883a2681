/**
 * A child link of a host NIC, born inside the guest: a macvlan, an ipvlan or an 802.1q VLAN. The
 * three differ only in their IFLA_LINKINFO and in whether the child takes a MAC of its own (an
 * ipvlan shares its parent's); making, removing and checking them is the same.
 */
import type { AttachmentPlan } from '../../model/attachment.js';
import { PipewrightError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { deleteLinkWords, logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { ifla } from '../rtnetlink/attrs.js';
import { childTempName } from '../../model/host-names.js';
import { deleteHostLink, delLink, hostIndex, indexIn, newLink, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket, withNetnsFd, withNetnsSocket } from '../rtnetlink/sockets.js';
import { ARPHRD_ETHER, hostLinkExists, type HostLinkInfo } from '../link-state/sysfs.js';
import type { LinkIdentity, LinkRef } from './driver.js';
import { deleteInGuest } from './in-guest.js';
import { unlessKernelLacks } from './kernel-lacks.js';

export interface ChildType {
  /** `type ...` in iproute2's words. */
  words: string[];
  /** IFLA_LINKINFO for the kernel. */
  info: Buffer;
  /** The child gets the plan's MAC (an ipvlan cannot: it has its parent's). */
  ownMac: boolean;
  /** The kernel option that builds this kind, for the error when the kernel lacks it. */
  config: string;
}

/** An Ethernet interface that is not a bridge: a parent for macvlan, ipvlan and VLAN children. */
export const isNic = (host: HostLinkInfo | null): boolean =>
  host !== null && host.type === ARPHRD_ETHER && !host.bridge;

/** The parent's part of a child's plan; throws when the host interface cannot be a parent. */
export function parentDefaults(host: HostLinkInfo | null, hostIf: string, kind: string): HostLinkInfo {
  if (!host) throw new PipewrightError(`no host interface ${hostIf}: an ${kind} needs an existing parent`);
  if (!isNic(host))
    throw new PipewrightError(
      `host interface ${hostIf} is not an Ethernet NIC (link type ${host.type}${host.bridge ? ', a bridge' : ''}); an ${kind} needs one as its parent`,
    );
  return host;
}

export function childWords(plan: AttachmentPlan, netns: string, type: ChildType): IpWords {
  const mac = type.ownMac ? ['address', plan.mac] : [];
  return [
    'link',
    'add',
    'link',
    plan.hostIf,
    'name',
    plan.ifname,
    'mtu',
    String(plan.mtu),
    ...mac,
    'netns',
    netns,
    'type',
    ...type.words,
  ];
}

/**
 * Makes the child inside the guest under a name of its own, then renames it there. A kernel
 * before 6.15 looks a new link's name up in the caller's namespace, not the target's, so a
 * guest's eth0 could not be made on a host that has an eth0 (EEXIST). The CNI plugins do the same.
 * A failed rename removes the new link: nothing is left when the kernel refuses.
 */
export async function createChild(
  plan: AttachmentPlan,
  netnsPath: string,
  type: ChildType,
  log?: StepLog,
): Promise<LinkIdentity> {
  const temp = childTempName(plan.ifname);
  logAsIp(log, [childWords({ ...plan, ifname: temp }, netnsPath, type)]);
  const mac = type.ownMac ? [ifla.address(plan.mac)] : [];
  await withNetnsFd(netnsPath, (fd) =>
    newLink(hostSocket(), temp, [
      ifla.ifname(temp),
      ifla.mtu(plan.mtu),
      ...mac,
      ifla.link(hostIndex(plan.hostIf)),
      ifla.netnsFd(fd),
      type.info,
    ]),
  ).catch(unlessKernelLacks(plan.kind, type.config));
  return withNetnsSocket(netnsPath, async (sock) => {
    logAsIp(log, [['link', 'set', 'dev', temp, 'name', plan.ifname]], netnsPath);
    const index = await indexIn(sock, temp);
    await setLink(sock, index, [ifla.ifname(plan.ifname)]).catch(async (err: unknown) => {
      await delLink(sock, index);
      throw err;
    });
    // The index a rename keeps: what the link is found by at removal.
    return { linkIndex: index, linkPerm: null };
  });
}

/**
 * Removes the child wherever it is: a Docker endpoint's waits in the host under its host link's
 * name (before Docker moves it, after Leave).
 */
export async function removeChild(link: LinkRef, netnsPath: string | null, log?: StepLog): Promise<void> {
  if (link.hostLink && hostLinkExists(link.hostLink)) {
    logAsIp(log, [deleteLinkWords(link.hostLink)]);
    await deleteHostLink(link.hostLink);
  }
  await deleteInGuest(link, netnsPath, log);
}

export const checkParent = (link: LinkRef): string | null =>
  hostLinkExists(link.hostIf) ? null : `parent ${link.hostIf} is missing`;
