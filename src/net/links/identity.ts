/**
 * Which link of a guest is an attachment's. A name is the guest's to give: it may rename our link
 * or give its own link our name. So a link is found by the index recorded when it was made (a
 * rename keeps it) and taken for ours only if it still is what was made there: its kind, its
 * parent (a child's IFLA_LINK, the parent's host index), its MAC, a moved NIC's permanent address.
 * Records of older versions have no index: their link is found by name, with the same checks.
 */
import { PipewrightError } from '../../util/errors.js';
import { IFLA, linkKind, readMac, readU32 } from '../rtnetlink/attrs.js';
import { errno } from '../rtnetlink/errno.js';
import { dumpLinks, getLink, hostIndex, linkName, type LinkMessage } from '../rtnetlink/rtnl.js';
import type { RtSocket } from '../rtnetlink/sockets.js';
import { hostLinkExists } from '../link-state/sysfs.js';
import type { LinkRef } from './driver.js';

/** IFLA_PERM_ADDRESS (linux/if_link.h, Linux 5.6): the MAC a NIC was made with, which no one can change. */
const IFLA_PERM_ADDRESS = 54;

/** A link as the kernel describes it, the parts that tell it from another. */
export interface SeenLink {
  index: number;
  name: string;
  /** IFLA_LINKINFO's kind; none for a hardware NIC. */
  kind: string | undefined;
  /** IFLA_LINK: a child's parent index (in the parent's namespace). */
  parent: number | undefined;
  mac: string;
  perm: string | null;
}

export function seenLink(m: LinkMessage): SeenLink {
  const perm = m.attrs.get(IFLA_PERM_ADDRESS);
  return {
    index: m.index,
    name: linkName(m),
    kind: linkKind(m.attrs.get(IFLA.LINKINFO)),
    parent: readU32(m.attrs.get(IFLA.LINK)),
    mac: readMac(m.attrs.get(IFLA.ADDRESS)),
    perm: perm ? readMac(perm) : null,
  };
}

/** The link of that index (or name) in the socket's namespace, or null when there is none. */
export async function linkAt(sock: RtSocket, which: number | string): Promise<SeenLink | null> {
  const m = await getLink(sock, which).catch((err: unknown) => {
    if (errno(err) === 'ENODEV') return null;
    throw err;
  });
  return m && seenLink(m);
}

/** The identity a link made for `ref` was recorded with. */
export const identityOf = (l: SeenLink) => ({ linkIndex: l.index, linkPerm: l.perm });

const CHILD_KINDS = ['macvlan', 'ipvlan', 'vlan'];
/** Kinds whose link has a MAC of its own (an ipvlan has its parent's, the same for all its siblings). */
const OWN_MAC_KINDS = ['macvlan', 'vlan', 'dummy'];

/** The parent's host index (null when the parent is gone: its children went with it). */
const parentIndex = (ref: LinkRef) => (hostLinkExists(ref.hostIf) ? hostIndex(ref.hostIf) : null);

/** A link of ref's kind on ref's parent: what could hold the attachment's place on the parent's LAN. */
function sameKindAndParent(l: SeenLink, ref: LinkRef, parent: number | null): boolean {
  return l.kind === ref.kind && (!CHILD_KINDS.includes(ref.kind) || (parent !== null && l.parent === parent));
}

function isOurs(l: SeenLink, ref: LinkRef, parent: number | null): boolean {
  // A NIC without a permanent address (a virtual one) is told by its MAC; an older record knows no more.
  if (ref.kind === 'phys')
    return ref.linkPerm ? l.perm === ref.linkPerm : l.mac === ref.mac && (l.perm === null || ref.linkIndex === null);
  return sameKindAndParent(l, ref, parent) && (!OWN_MAC_KINDS.includes(ref.kind) || l.mac === ref.mac);
}

/**
 * ref's link in the socket's namespace: the link at `where` (the recorded index; a name for older
 * records), if it is ours.
 */
export async function findOwnLink(
  sock: RtSocket,
  ref: LinkRef,
  where: number | string = ref.linkIndex ?? ref.ifname,
): Promise<SeenLink | null> {
  const l = await linkAt(sock, where);
  return l && isOurs(l, ref, parentIndex(ref)) ? l : null;
}

/**
 * Links of the guest that hold what ref's link held, once ours is removed: a link of its kind on
 * its parent with its MAC (a replacement), or at its index with another MAC (ours, changed).
 */
async function holders(sock: RtSocket, ref: LinkRef): Promise<SeenLink[]> {
  const parent = parentIndex(ref);
  const holds = (l: SeenLink) =>
    sameKindAndParent(l, ref, parent) &&
    (l.index === ref.linkIndex || (OWN_MAC_KINDS.includes(ref.kind) && l.mac === ref.mac));
  return (await dumpLinks(sock)).map(seenLink).filter(holds);
}

/**
 * Throws, in one line, when the guest still holds ref's place: the caller stops before the
 * lease is released, so no address the guest still holds is handed to another.
 */
export async function refuseIfHeld(sock: RtSocket, ref: LinkRef): Promise<void> {
  const held = await holders(sock, ref);
  if (!held.length) return;
  const on = CHILD_KINDS.includes(ref.kind) ? ` of ${ref.hostIf}` : '';
  const them = held.map((l) => `${l.name} (index ${l.index}, MAC ${l.mac})`).join(', ');
  throw new PipewrightError(
    `the guest holds a ${ref.kind}${on} that is not the one pipewright made as ${ref.ifname}: ${them}; ` +
      `its lease and record stay until that link is removed in the guest or the guest is gone, then detach again`,
  );
}
