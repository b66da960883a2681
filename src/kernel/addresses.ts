/** Addresses on host links (a network's bridge, a macvlan shim) over rtnetlink. */
import type { RtNetlinkSocket } from 'netlink';
import type { IpConfig } from '../model/address.js';
import { errno } from './netlink/errno.js';
import { AF, CREATE_EXCL, CREATE_REPLACE, hostIndex, ipBytes, UP } from './netlink/rtnl.js';
import { hostSocket } from './netlink/sockets.js';

/** Adds an address to the link at `index`; IPv6 ones without DAD, so they are usable at once. */
export async function addAddress(sock: RtNetlinkSocket, index: number, a: IpConfig, replace = false): Promise<void> {
  const local = ipBytes(a.address);
  await sock.newAddress(
    { family: AF[a.family], prefixlen: a.prefix, index, ...(a.family === 6 ? { flags: { nodad: true } } : {}) },
    { local, address: local },
    replace ? CREATE_REPLACE : CREATE_EXCL,
  );
}

/** An address on a host link, which is brought up; there already is fine. */
export async function setHostAddress(name: string, a: IpConfig): Promise<void> {
  const sock = hostSocket();
  await addAddress(sock, hostIndex(name), a, true);
  await sock.setLink({ index: hostIndex(name), ...UP }, {});
}

/** Removes an address from a host link; one already gone (or the whole link) is fine. */
export async function removeHostAddress(name: string, a: IpConfig): Promise<void> {
  let index: number;
  try {
    index = hostIndex(name);
  } catch {
    return; // the link went (another process released it), and its addresses with it
  }
  await hostSocket()
    .delAddress({ family: AF[a.family], prefixlen: a.prefix, index }, { local: ipBytes(a.address) })
    .catch((err) => {
      // Gone already: the address, or the whole link between our index read and this request.
      if (!['EADDRNOTAVAIL', 'ENODEV'].includes(errno(err) ?? '')) throw err;
    });
}

export function addressWords(a: IpConfig, dev: string): string[] {
  return ['address', 'add', `${a.address}/${a.prefix}`, 'dev', dev, ...(a.family === 6 ? ['nodad'] : [])];
}
