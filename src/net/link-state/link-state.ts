/**
 * What a namespace holds of a link: name, kind, bridge, MTU, MAC, up, addresses. Read over
 * rtnetlink (no `ip` process): the host's socket, or one opened inside the guest's namespace.
 */
import { IFLA, linkKind, readMac, readU32 } from '../rtnetlink/attrs.js';
import { errno } from '../rtnetlink/errno.js';
import {
  dumpAddresses,
  dumpLinks,
  getLink,
  linkName,
  RT_SCOPE_LINK,
  type AddressMessage,
  type LinkMessage,
} from '../rtnetlink/rtnl.js';
import { hostSocket, withNetnsSocket, type Requester, type RtSocket } from '../rtnetlink/sockets.js';

/** Where a read looks: the host's network namespace, or the one at this path. */
export type NetnsPath = string | undefined;

export interface LinkState {
  ifname: string;
  ifindex: number;
  kind?: string;
  master?: string;
  mtu: number;
  mac: string;
  up: boolean;
  /** "address/prefix" of each address but link-local ones. */
  addresses: string[];
}

function withSocket<T>(netns: NetnsPath, fn: (sock: RtSocket) => Promise<T>): Promise<T> {
  return netns ? withNetnsSocket(netns, fn) : fn(hostSocket());
}

/** The index of the bridge a link is a port of, if it is one. */
const masterOf = (link: LinkMessage) => readU32(link.attrs.get(IFLA.MASTER)) || undefined;

function toLinkState(link: LinkMessage, addresses: AddressMessage[], master: string | undefined): LinkState {
  return {
    ifname: linkName(link),
    ifindex: link.index,
    kind: linkKind(link.attrs.get(IFLA.LINKINFO)),
    master,
    mtu: readU32(link.attrs.get(IFLA.MTU)) ?? 0,
    mac: readMac(link.attrs.get(IFLA.ADDRESS)),
    up: link.up,
    addresses: addresses
      .filter((a) => a.index === link.index && a.scope !== RT_SCOPE_LINK)
      .map((a) => `${a.address}/${a.prefix}`),
  };
}

/** The link and its addresses, or null when no such interface exists in that namespace. */
export function readLink(name: string, netns: NetnsPath): Promise<LinkState | null> {
  return withSocket(netns, (sock) => linkOn(sock, name));
}

/** readLink on a socket already open in the namespace. */
export async function linkOn(sock: Requester, name: string): Promise<LinkState | null> {
  const link = await getLink(sock, name).catch((err: unknown) => {
    if (errno(err) === 'ENODEV') return null;
    throw err;
  });
  if (!link) return null;
  const master = masterOf(link);
  return toLinkState(link, await dumpAddresses(sock), master ? linkName(await getLink(sock, master)) : undefined);
}

/** Every link of a namespace (used to find an interface by MAC, and by gc). */
export function readLinks(netns: NetnsPath): Promise<LinkState[]> {
  return withSocket(netns, async (sock) => {
    const [links, addresses] = [await dumpLinks(sock), await dumpAddresses(sock)];
    const names = new Map(links.map((l) => [l.index, linkName(l)]));
    return links.map((l) => {
      const master = masterOf(l);
      return toLinkState(l, addresses, master === undefined ? undefined : names.get(master));
    });
  });
}
