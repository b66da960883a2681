/**
 * Removing a link that lives inside a guest (a macvlan, an ipvlan, a VLAN, a dummy, a moved NIC):
 * found there by its identity (identity.ts).
 */
import { existsSync } from 'node:fs';
import { childTempName } from '../../model/host-names.js';
import type { StepLog } from '../../util/log.js';
import { deleteLinkWords, logAsIp } from '../rtnetlink/ip-words.js';
import { errno } from '../rtnetlink/errno.js';
import { delLink } from '../rtnetlink/rtnl.js';
import { withNetnsSocket, type RtSocket } from '../rtnetlink/sockets.js';
import type { LinkRef } from './driver.js';
import { findOwnLink, refuseIfHeld } from './identity.js';

/** Runs fn with a socket in the guest's namespace; nothing when the guest is gone. */
export async function inGuest(netnsPath: string | null, fn: (sock: RtSocket) => Promise<void>): Promise<void> {
  if (!netnsPath || !existsSync(netnsPath)) return;
  await withNetnsSocket(netnsPath, fn).catch((err: unknown) => {
    // The namespace went between the look and the entry (a container's sandbox, removed: its file
    // gone, or left behind unmounted, which setns refuses with EINVAL): its links went with it.
    if (!['ENOENT', 'EINVAL'].includes(errno(err) ?? '')) throw err;
  });
}

/**
 * Deletes the guest's link that is ours, whatever the guest named it, and refuses (throws) if the
 * guest still holds its place with another. A record without an index (an older version's, or
 * one a kill left before the index was recorded) may also have left its link under the name it
 * is made with (child.ts).
 */
export function deleteInGuest(link: LinkRef, netnsPath: string | null, log?: StepLog): Promise<void> {
  return inGuest(netnsPath, async (sock) => {
    for (const where of link.linkIndex === null ? [link.ifname, childTempName(link.ifname)] : [link.linkIndex]) {
      const own = await findOwnLink(sock, link, where);
      if (!own) continue;
      logAsIp(log, [deleteLinkWords(own.name)], netnsPath!);
      await delLink(sock, own.index);
    }
    await refuseIfHeld(sock, link);
  });
}
