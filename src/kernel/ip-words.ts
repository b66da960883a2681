/**
 * What an attachment is made of (InterfacePlan), the routes it gets, and each kernel step in
 * iproute2's words: the netlink layer carries the steps out, --verbose prints these so an
 * operator can read (and re-run) what was done. Pure functions.
 */
import type { IpConfig, RouteSpec } from '../model/address.js';
import type { MacvlanMode } from '../model/validate.js';

/**
 * How the guest interface reaches the host: a veth pair on a bridge, a macvlan child of a NIC, or
 * the NIC itself moved into the guest ("phys", pipework's --direct-phys; moved back at detach).
 */
export type LinkKind = 'veth' | 'macvlan' | 'phys';

export interface InterfacePlan {
  kind: LinkKind;
  /** The bridge (veth) or the parent interface (macvlan). */
  hostIf: string;
  /** The host end of a veth pair; macvlan has none. */
  hostLink?: string;
  /** Interface name inside the guest. */
  ifname: string;
  mac: string;
  mtu: number;
  macvlanMode?: MacvlanMode;
  addresses: IpConfig[];
  routes: RouteSpec[];
}

type Cmd = string[];

export function createBridgeCmds(bridge: string): Cmd[] {
  return [
    ['link', 'add', 'name', bridge, 'type', 'bridge'],
    ['link', 'set', bridge, 'up'],
  ];
}

/**
 * The guest end is born inside the guest's namespace (`netns` on creation): moving a link
 * afterwards is the slowest step of an attach, and a failure between create and move would
 * leave the guest's name on the host.
 */
export function createLinkCmds(plan: InterfacePlan, netns: string): Cmd[] {
  const guestEnd = ['name', plan.ifname, 'mtu', String(plan.mtu), 'address', plan.mac, 'netns', netns];
  if (plan.kind === 'phys') {
    return [['link', 'set', 'dev', plan.hostIf, 'netns', netns, 'name', plan.ifname, 'mtu', String(plan.mtu), 'address', plan.mac]];
  }
  if (plan.kind === 'veth') {
    return [
      ['link', 'add', 'name', plan.hostLink!, 'mtu', String(plan.mtu), 'type', 'veth', 'peer', ...guestEnd],
      ['link', 'set', plan.hostLink!, 'master', plan.hostIf, 'up'],
    ];
  }
  return [['link', 'add', 'link', plan.hostIf, ...guestEnd, 'type', 'macvlan', 'mode', plan.macvlanMode ?? 'bridge']];
}

/**
 * Inside the guest: addresses before link up (the kernel then has them when it announces the
 * link), IPv6 ones with `nodad` so they are usable at once, routes after up (a gateway must be
 * reachable to be accepted).
 */
export function configureGuestCmds(plan: InterfacePlan): Cmd[] {
  const cmds: Cmd[] = [['link', 'set', 'lo', 'up']];
  for (const a of plan.addresses) {
    cmds.push(['address', 'add', `${a.address}/${a.prefix}`, 'dev', plan.ifname, ...(a.family === 6 ? ['nodad'] : [])]);
  }
  cmds.push(['link', 'set', plan.ifname, 'up']);
  for (const r of routesOf(plan)) {
    // `ip -batch` takes no -4/-6 per line: spell "default" as the family's zero prefix.
    const dst = r.dst === 'default' ? (r.family === 4 ? '0.0.0.0/0' : '::/0') : r.dst;
    cmds.push(['route', 'replace', dst, ...(r.via ? ['via', r.via] : []), 'dev', plan.ifname]);
  }
  return cmds;
}

/** Explicit routes plus one default route per family from the first address that names a gateway. */
export function routesOf(plan: Pick<InterfacePlan, 'addresses' | 'routes'>): RouteSpec[] {
  const defaults: RouteSpec[] = [];
  for (const family of [4, 6] as const) {
    const gw = plan.addresses.find((a) => a.family === family && a.gateway);
    if (gw && !plan.routes.some((r) => r.dst === 'default' && r.family === family)) {
      defaults.push({ dst: 'default', family, via: gw.gateway });
    }
  }
  return [...defaults, ...plan.routes];
}

/** Deleting either end of a veth deletes both; a macvlan is deleted where it lives (the guest). */
export function deleteLinkCmd(name: string): Cmd {
  return ['link', 'delete', 'dev', name];
}

/** The host's macvlan on the parent, so the host reaches macvlan guests (the kernel isolates parent and children). */
export function createShimCmds(parent: string, shim: string, address: IpConfig): Cmd[] {
  return [
    ['link', 'add', 'link', parent, 'name', shim, 'type', 'macvlan', 'mode', 'bridge'],
    ['address', 'add', `${address.address}/${address.prefix}`, 'dev', shim, ...(address.family === 6 ? ['nodad'] : [])],
    ['link', 'set', shim, 'up'],
  ];
}

/** Run inside the guest: gives a moved NIC back to the host namespace under its own name. */
export function returnPhysCmd(ifname: string, hostIf: string, hostNetns: string): Cmd {
  return ['link', 'set', 'dev', ifname, 'netns', hostNetns, 'name', hostIf];
}
