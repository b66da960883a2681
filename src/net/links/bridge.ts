/** Linux bridges on the host: creation (up, or nothing left on failure), their ports, hairpin mode. */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { StepLog } from '../../util/log.js';
import { logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { createFinishedLink, hostIndex, newLink, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';
import { ifla, kindLinkInfo } from '../rtnetlink/attrs.js';

export function createBridgeWords(bridge: string): IpWords[] {
  return [
    ['link', 'add', 'name', bridge, 'type', 'bridge'],
    ['link', 'set', bridge, 'up'],
  ];
}

/** Creates the bridge and brings it up; a bridge that could not be brought up is deleted again. */
export async function createBridge(name: string, log?: StepLog): Promise<void> {
  logAsIp(log, createBridgeWords(name));
  const sock = hostSocket();
  await createFinishedLink(
    name,
    () => newLink(sock, name, [ifla.ifname(name), kindLinkInfo('bridge')]),
    () => setLink(sock, hostIndex(name), [], true),
  );
}

/**
 * Plugs a host link, by its index, into a bridge and brings it up (a port the bridge lost when it
 * was deleted); the name is for the log.
 */
export async function plugIntoBridge(port: LinkAt, bridge: string, log?: StepLog): Promise<void> {
  logAsIp(log, [['link', 'set', port.ifname, 'master', bridge, 'up']]);
  await setLink(hostSocket(), port.ifindex, [ifla.master(hostIndex(bridge))], true);
}

/** A link as read: its index, and its name then. */
export interface LinkAt {
  ifname: string;
  ifindex: number;
}

/** Something (a guest's veth, a user's own link) is plugged into the bridge. */
export function bridgeHasPorts(bridge: string): boolean {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) && readdirSync(dir).length > 0;
}

/** Lets the bridge send a frame back out of the port it came in by (hairpin NAT). */
export function setHairpin(port: string, log?: StepLog): void {
  const path = `/sys/class/net/${port}/brport/hairpin_mode`;
  log?.step(`echo 1 > ${path}`);
  writeFileSync(path, '1');
}

const BR_STATE_FORWARDING = '3';

/**
 * Waits until a bridge port forwards (its carrier comes on asynchronously, through the kernel's
 * linkwatch, after the peer came up); true when it does within `timeoutMs`.
 */
export async function waitForwarding(port: string, timeoutMs = 1500): Promise<boolean> {
  const path = `/sys/class/net/${port}/brport/state`;
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 5))) {
    if (existsSync(path) && readFileSync(path, 'utf8').trim() === BR_STATE_FORWARDING) return true;
  }
  return false;
}
