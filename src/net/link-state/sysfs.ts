/**
 * Cheap reads of the host's own links from /sys/class/net (no process, no socket): enough to tell
 * whether a name exists, whether it is a bridge, its link type, MTU and MAC. Host namespace only.
 */
import { existsSync, readFileSync } from 'node:fs';

const SYS = '/sys/class/net';

/** ARPHRD link type of Ethernet (what a macvlan needs as parent); 772 is loopback, 32 InfiniBand. */
export const ARPHRD_ETHER = 1;

export function hostLinkExists(name: string): boolean {
  return existsSync(`${SYS}/${name}`);
}

export interface HostLinkInfo {
  bridge: boolean;
  mtu: number;
  type: number;
  mac: string;
}

export function hostLinkInfo(name: string): HostLinkInfo | null {
  if (!hostLinkExists(name)) return null;
  return {
    bridge: existsSync(`${SYS}/${name}/bridge`),
    mtu: Number(readFileSync(`${SYS}/${name}/mtu`, 'utf8')),
    type: Number(readFileSync(`${SYS}/${name}/type`, 'utf8')),
    mac: readFileSync(`${SYS}/${name}/address`, 'utf8').trim(),
  };
}
