/** Host-side names pipewright chooses: short (<= 15 bytes), stable for a guest+ifname, unique. */
import { createHash } from 'node:crypto';
import { checkIfname } from './validate.js';

export const HOST_LINK_PREFIX = 'pw';

/**
 * "pw" + 8 hex digits of a hash of the guest identity and interface name. `attempt` varies the
 * hash when a name is already taken.
 */
export function hostLinkName(guestKey: string, ifname: string, attempt = 0): string {
  const digest = createHash('sha1').update(`${guestKey}\0${ifname}\0${attempt}`).digest('hex');
  return `${HOST_LINK_PREFIX}${digest.slice(0, 8)}`;
}

/**
 * A child link's name while it is made (links/child.ts): "pwn" + 8 hex digits of a hash of its
 * final name, so a kill between its making and its renaming leaves a name cleanup can find.
 */
export function childTempName(ifname: string): string {
  return `pwn${createHash('sha1').update(ifname).digest('hex').slice(0, 8)}`;
}

/** The host VLAN interface a network's links hang off: `<nic>.<id>`, as Docker's macvlan and ipvlan drivers name it. */
export function vlanInterfaceName(nic: string, id: number): string {
  return checkIfname(`${nic}.${id}`, `VLAN interface of ${nic} (<nic>.<id>)`);
}

/** The NIC and VLAN id (unchecked) a `<nic>.<id>` name spells, as Docker's parent=eth1.10; else null. */
export function splitVlanName(name: string): { nic: string; id: string } | null {
  const dotted = /^(.+)\.(\d+)$/.exec(name);
  return dotted ? { nic: dotted[1]!, id: dotted[2]! } : null;
}

/** The host's own macvlan on a parent ("shim"), shared by every guest on that parent. */
export function shimName(parent: string): string {
  return `pws${createHash('sha1').update(parent).digest('hex').slice(0, 8)}`;
}

/** The ifb shaping a guest's egress, named after the attachment's host end (itself unique). */
export function ifbName(hostLink: string): string {
  return `pwi${createHash('sha1').update(hostLink).digest('hex').slice(0, 8)}`;
}
