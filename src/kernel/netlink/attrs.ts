/**
 * Netlink attributes the `netlink` package leaves as raw bytes: IFLA_LINKINFO for veth (with its
 * peer's ifinfomsg and attributes), macvlan and bridge, and the per-device IPv4 settings in
 * IFLA_AF_SPEC. Layouts from linux/if_link.h, linux/veth.h, linux/rtnetlink.h.
 */

/** One attribute: u16 length (header included), u16 type, payload, padded to 4 bytes. */
export function nla(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
export const str = (s: string) => Buffer.concat([Buffer.from(s), Buffer.alloc(1)]);
export const mac = (m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));

const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, NET_NS_FD: 28 } as const;
const INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFLA_MACVLAN_MODE = 1;
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;

/** struct ifinfomsg, all zero: the peer's header inside VETH_INFO_PEER. */
const IFINFOMSG_LEN = 16;

export interface PeerSpec {
  ifname: string;
  mtu: number;
  mac: string;
  /** An open fd of the namespace the peer is born in. */
  netnsFd: number;
}

/** IFLA_LINKINFO payload of a veth pair whose peer is created, named and addressed inside the guest. */
export function vethLinkInfo(peer: PeerSpec): Buffer {
  const peerMsg = Buffer.concat([
    Buffer.alloc(IFINFOMSG_LEN),
    nla(IFLA.IFNAME, str(peer.ifname)),
    nla(IFLA.MTU, u32(peer.mtu)),
    nla(IFLA.ADDRESS, mac(peer.mac)),
    nla(IFLA.NET_NS_FD, u32(peer.netnsFd)),
  ]);
  return Buffer.concat([nla(INFO.KIND, str('veth')), nla(INFO.DATA, nla(VETH_INFO_PEER, peerMsg))]);
}

export function macvlanLinkInfo(mode: keyof typeof MACVLAN_MODE): Buffer {
  return Buffer.concat([nla(INFO.KIND, str('macvlan')), nla(INFO.DATA, nla(IFLA_MACVLAN_MODE, u32(MACVLAN_MODE[mode])))]);
}

export function kindLinkInfo(kind: string): Buffer {
  return nla(INFO.KIND, str(kind));
}

const AF_INET = 2;
const IFLA_INET_CONF = 1;
const IPV4_DEVCONF_ARP_NOTIFY = 22;

/**
 * IFLA_AF_SPEC for AF_INET: arp_notify=1 on this device, so the kernel itself sends a gratuitous
 * ARP when the link comes up with its address (no arping process).
 */
export function arpNotifySpec(): Map<number, Buffer> {
  return new Map([[AF_INET, nla(IFLA_INET_CONF, nla(IPV4_DEVCONF_ARP_NOTIFY, u32(1)))]]);
}
