/**
 * The kernel steps of an attach over rtnetlink, in-process: no tool is spawned. Host-side links
 * go through the host socket; the guest's addresses, routes and link states through a socket
 * opened inside the guest's namespace. The guest end of a veth (and a macvlan) is created inside
 * the guest directly (IFLA_NET_NS_FD at creation), never created and then moved.
 */
import type { RtNetlinkSocket } from 'netlink';
import ipaddr from 'ipaddr.js';
import { readFileSync } from 'node:fs';
import type { IpConfig } from '../../model/address.js';
import type { InterfacePlan } from '../ip-words.js';
import { routesOf } from '../ip-words.js';
import { arpNotifySpec, kindLinkInfo, mac, macvlanLinkInfo, u32, vethLinkInfo } from './attrs.js';
import { errno } from './errno.js';
import { hostSocket, netlink, withNetnsFd, withNetnsSocket } from './sockets.js';

const { FlagsNew } = netlink;
const CREATE_EXCL = { flags: FlagsNew.CREATE | FlagsNew.EXCL };
const CREATE_REPLACE = { flags: FlagsNew.CREATE | FlagsNew.REPLACE };
const UP = { flags: { up: true as const }, change: { up: true as const } };
const AF = { 4: 2, 6: 10 } as const;
const RT_TABLE_MAIN = 254;

/** A host link's index from sysfs (no round trip). */
export function hostIndex(name: string): number {
  return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
}

async function indexIn(sock: RtNetlinkSocket, ifname: string): Promise<number> {
  const [link] = await sock.getLink({}, { ifname });
  return link.data.index!;
}

const ipBytes = (ip: string) => Buffer.from(ipaddr.parse(ip).toByteArray());

export async function createBridge(name: string): Promise<void> {
  const sock = hostSocket();
  await sock.newLink({}, { ifname: name, linkinfo: kindLinkInfo('bridge') }, CREATE_EXCL);
  await sock.setLink({ index: hostIndex(name), ...UP }, {});
}

/** Creates the plan's link with its guest end inside the guest; a veth's host end joins the bridge, up. */
export async function createLink(plan: InterfacePlan, netnsPath: string): Promise<void> {
  const sock = hostSocket();
  await withNetnsFd(netnsPath, async (fd) => {
    if (plan.kind === 'veth') {
      await sock.newLink({}, { ifname: plan.hostLink!, mtu: plan.mtu, linkinfo: vethLinkInfo({ ifname: plan.ifname, mtu: plan.mtu, mac: plan.mac, netnsFd: fd }) }, CREATE_EXCL);
      await sock.setLink({ index: hostIndex(plan.hostLink!), ...UP }, { master: hostIndex(plan.hostIf) });
    } else if (plan.kind === 'macvlan') {
      await sock.newLink({}, { ifname: plan.ifname, mtu: plan.mtu, address: mac(plan.mac), link: u32(hostIndex(plan.hostIf)), netNsFd: fd,
        linkinfo: macvlanLinkInfo(plan.macvlanMode ?? 'bridge') }, CREATE_EXCL);
    } else {
      await sock.setLink({ index: hostIndex(plan.hostIf) }, { netNsFd: fd, ifname: plan.ifname, mtu: plan.mtu, address: mac(plan.mac) });
    }
  });
}

async function addAddress(sock: RtNetlinkSocket, index: number, a: IpConfig, replace = false): Promise<void> {
  const local = ipBytes(a.address);
  await sock.newAddress({ family: AF[a.family], prefixlen: a.prefix, index, ...(a.family === 6 ? { flags: { nodad: true } } : {}) },
    { local, address: local }, replace ? CREATE_REPLACE : CREATE_EXCL);
}

/** An address on a host link (a network's bridge, a shim), which is brought up; there already is fine. */
export async function setHostAddress(name: string, a: IpConfig): Promise<void> {
  const sock = hostSocket();
  await addAddress(sock, hostIndex(name), a, true);
  await sock.setLink({ index: hostIndex(name), ...UP }, {});
}

export async function removeHostAddress(name: string, a: IpConfig): Promise<void> {
  await hostSocket().delAddress({ family: AF[a.family], prefixlen: a.prefix, index: hostIndex(name) }, { local: ipBytes(a.address) })
    .catch((err) => { if (errno(err) !== 'EADDRNOTAVAIL') throw err; });
}

/** The host's own macvlan on a parent (bridge mode), with an address. */
export async function createShim(parent: string, shim: string, a: IpConfig): Promise<void> {
  await hostSocket().newLink({}, { ifname: shim, link: u32(hostIndex(parent)), linkinfo: macvlanLinkInfo('bridge') }, CREATE_EXCL);
  await setHostAddress(shim, a);
}

/**
 * Inside the guest: lo up; arp_notify, so coming up announces the address (gratuitous ARP);
 * addresses before up (IPv6 ones without DAD, usable at once); routes after up.
 */
export async function configureGuest(plan: InterfacePlan, netnsPath: string): Promise<void> {
  await withNetnsSocket(netnsPath, async (sock) => {
    await sock.setLink({ index: await indexIn(sock, 'lo'), ...UP }, {});
    const index = await indexIn(sock, plan.ifname);
    if (plan.addresses.some((a) => a.family === 4)) await sock.setLink({ index }, { afSpec: arpNotifySpec() });
    for (const a of plan.addresses) await addAddress(sock, index, a);
    await sock.setLink({ index, ...UP }, {});
    for (const r of routesOf(plan)) {
      const [dst, len] = r.dst === 'default' ? [null, 0] : [r.dst.split('/')[0], Number(r.dst.split('/')[1])];
      await sock.newRoute({ family: AF[r.family], dstLen: len, table: RT_TABLE_MAIN, protocol: 'BOOT', scope: r.via ? 'UNIVERSE' : 'LINK', type: 'UNICAST' },
        { ...(dst ? { dst: ipBytes(dst) } : {}), ...(r.via ? { gateway: ipBytes(r.via) } : {}), oif: index }, CREATE_REPLACE);
    }
  });
}

/** Deletes a host link (either end of a veth takes both). */
export async function deleteHostLink(name: string): Promise<void> {
  await hostSocket().delLink({ index: hostIndex(name) }, {});
}

/** Inside the guest: deletes a macvlan, or gives a moved NIC back to the host under its own name. */
export async function releaseGuestLink(plan: Pick<InterfacePlan, 'kind' | 'ifname' | 'hostIf'>, netnsPath: string): Promise<void> {
  await withNetnsSocket(netnsPath, async (sock) => {
    const index = await indexIn(sock, plan.ifname).catch((err) => {
      if (errno(err) === 'ENODEV') return null; // already gone
      throw err;
    });
    if (index === null) return;
    if (plan.kind === 'phys') {
      await withNetnsFd(`/proc/${process.pid}/ns/net`, (fd) => sock.setLink({ index }, { netNsFd: fd, ifname: plan.hostIf }));
    } else {
      await sock.delLink({ index }, {});
    }
  });
}
