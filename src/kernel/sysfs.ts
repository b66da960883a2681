/**
 * Cheap reads of the host's own links from /sys/class/net (no process, no socket): enough to tell
 * whether a name exists, whether it is a bridge, and its MTU. Host namespace only.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { StepLog } from '../util/log.js';

const SYS = '/sys/class/net';

export function hostLinkExists(name: string): boolean {
  return existsSync(`${SYS}/${name}`);
}

export interface HostLinkInfo {
  bridge: boolean;
  mtu: number;
  /** ARPHRD link type: 1 is Ethernet (what a macvlan needs as parent), 772 loopback, 32 InfiniBand. */
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

/** This process's network namespace, as a path a tool in another namespace can name. */
export function ownNetns(): string {
  return `/proc/${process.pid}/ns/net`;
}

/** Lets the bridge send a frame back out of the port it came in by (hairpin NAT). */
export function setHairpin(port: string, log?: StepLog): void {
  const path = `${SYS}/${port}/brport/hairpin_mode`;
  log?.step(`echo 1 > ${path}`);
  writeFileSync(path, '1');
}
