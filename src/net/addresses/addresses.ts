/** Addresses on host links (a network's bridge, a macvlan shim) over rtnetlink. */
import type { IpConfig } from '../../model/address.js';
import { errno } from '../rtnetlink/errno.js';
import { addAddress, delAddress, hostIndex, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';

/** An address on a host link, which is brought up; there already is fine. */
export async function setHostAddress(name: string, a: IpConfig): Promise<void> {
  const sock = hostSocket();
  await addAddress(sock, hostIndex(name), a, true);
  await setLink(sock, hostIndex(name), [], true);
}

/** Removes an address from a host link; one already gone (or the whole link) is fine. */
export async function removeHostAddress(name: string, a: IpConfig): Promise<void> {
  let index: number;
  try {
    index = hostIndex(name);
  } catch {
    return; // the link went (another process released it), and its addresses with it
  }
  await delAddress(hostSocket(), index, a).catch((err: unknown) => {
    // Gone already: the address, or the whole link between our index read and this request.
    if (!['EADDRNOTAVAIL', 'ENODEV'].includes(errno(err) ?? '')) throw err;
  });
}

export function addressWords(a: IpConfig, dev: string): string[] {
  return ['address', 'add', `${a.address}/${a.prefix}`, 'dev', dev, ...(a.family === 6 ? ['nodad'] : [])];
}
