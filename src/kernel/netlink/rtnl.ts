/**
 * Small rtnetlink helpers every kernel step shares: message flags, address families, interface
 * indexes (from sysfs on the host, by name inside a guest), creating and deleting a host link.
 */
import type { RtNetlinkSocket } from 'netlink';
import ipaddr from 'ipaddr.js';
import { errno } from './errno.js';
import { readFileSync } from 'node:fs';
import { beforeStep } from '../../util/faults.js';
import { hostSocket } from './sockets.js';

// NLM_F_* of a new-object request (linux/netlink.h); constants here, so the netlink package loads only when a socket is made.
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
export const CREATE_EXCL = { flags: NLM_F_CREATE | NLM_F_EXCL };
export const CREATE_REPLACE = { flags: NLM_F_CREATE | NLM_F_REPLACE };
export const UP = { flags: { up: true as const }, change: { up: true as const } };
export const AF = { 4: 2, 6: 10 } as const;

/** A host link's index from sysfs (no round trip). */
export function hostIndex(name: string): number {
  return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
}

/** A link's index inside the namespace a socket belongs to. */
export async function indexIn(sock: RtNetlinkSocket, ifname: string): Promise<number> {
  const [link] = await sock.getLink({}, { ifname });
  return link.data.index!;
}

export const ipBytes = (ip: string) => Buffer.from(ipaddr.parse(ip).toByteArray());

/** Deletes a host link (either end of a veth takes both). */
export async function deleteHostLink(name: string): Promise<void> {
  // By name, not by an index read from sysfs: a link the kernel is unregistering (its guest's
  // namespace just went) answers sysfs reads with EINVAL, and one gone with ENODEV here: both done.
  await hostSocket()
    .delLink({}, { ifname: name })
    .catch((err: unknown) => {
      if (errno(err) !== 'ENODEV') throw err;
    });
}

/**
 * Creates a host link with one message, then finishes it with more (master, up, an address). A
 * link that could not be finished is deleted again: a half-made link has no record pointing at it,
 * so nothing else would ever remove it. "finish link <name>" is a fault-seam step.
 */
export async function createFinishedLink(name: string, create: () => Promise<unknown>, finish: () => Promise<unknown>): Promise<void> {
  await create();
  try {
    beforeStep(`finish link ${name}`);
    await finish();
  } catch (err) {
    await deleteHostLink(name).catch(() => {});
    throw err;
  }
}
