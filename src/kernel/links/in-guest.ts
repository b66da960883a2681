/** Removing a link that lives inside a guest (a macvlan, a dummy, a moved NIC): found by name there, if still there. */
import { existsSync } from 'node:fs';
import type { StepLog } from '../../util/log.js';
import { deleteLinkWords, logAsIp, type IpWords } from '../ip-words.js';
import { errno } from '../netlink/errno.js';
import { delLink, indexIn } from '../netlink/rtnl.js';
import { withNetnsSocket, type RtSocket } from '../netlink/sockets.js';
import type { LinkRef } from './driver.js';

export async function removeInGuest(
  link: LinkRef,
  netnsPath: string | null,
  words: IpWords[],
  act: (sock: RtSocket, index: number) => Promise<unknown>,
  log?: StepLog,
): Promise<void> {
  if (!netnsPath || !existsSync(netnsPath)) return;
  logAsIp(log, words, netnsPath);
  await withNetnsSocket(netnsPath, async (sock) => {
    const index = await indexIn(sock, link.ifname).catch((err) => {
      if (errno(err) === 'ENODEV') return null; // already gone
      throw err;
    });
    if (index !== null) await act(sock, index);
  }).catch((err: unknown) => {
    // The namespace went between the look and the entry (a container's sandbox, removed: its file
    // gone, or left behind unmounted, which setns refuses with EINVAL): its links went with it.
    if (!['ENOENT', 'EINVAL'].includes(errno(err) ?? '')) throw err;
  });
}

/** Deletes the guest's link of that name, if the guest and the link are still there. */
export function deleteInGuest(link: LinkRef, netnsPath: string | null, log?: StepLog): Promise<void> {
  return removeInGuest(link, netnsPath, [deleteLinkWords(link.ifname)], (sock) => delLink(sock, link.ifname), log);
}
