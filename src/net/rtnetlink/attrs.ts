/**
 * Netlink attributes (struct nlattr: u16 length with the header, u16 type, payload padded to 4
 * bytes), the few pipewright sends (linux/if_link.h, linux/veth.h, linux/if_addr.h,
 * linux/rtnetlink.h) and a reader for the ones the kernel answers with.
 */

/** One attribute. */
export function nla(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

export const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return b;
};
export const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0, 0);
  return b;
};
export const str = (s: string) => Buffer.concat([Buffer.from(s), Buffer.alloc(1)]);
export const mac = (m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));

/** Attributes by type (the nested flag masked off); a type given twice keeps its first. */
export function readAttrs(buf: Buffer, from = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = from; off + 4 <= buf.length;) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (!out.has(type)) out.set(type, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

export const readString = (b: Buffer | undefined) => b?.toString('utf8').replace(/\0.*$/s, '');
export const readU32 = (b: Buffer | undefined) => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
export const readMac = (b: Buffer | undefined) =>
  b ? [...b].map((x) => x.toString(16).padStart(2, '0')).join(':') : '';

/** IFLA_* of a link message. */
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  LINKINFO: 18,
  AF_SPEC: 26,
  NET_NS_FD: 28,
} as const;
const INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const IFLA_MACVLAN_MODE = 1;
export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;

/** The attributes of a link, each one nlattr, in the order a request carries them. */
export const ifla = {
  ifname: (name: string) => nla(IFLA.IFNAME, str(name)),
  mtu: (mtu: number) => nla(IFLA.MTU, u32(mtu)),
  address: (m: string) => nla(IFLA.ADDRESS, mac(m)),
  /** The parent link (a macvlan's). */
  link: (index: number) => nla(IFLA.LINK, u32(index)),
  /** The bridge a port joins. */
  master: (index: number) => nla(IFLA.MASTER, u32(index)),
  /** The namespace the link is born in or moves to, as an open fd of its file. */
  netnsFd: (fd: number) => nla(IFLA.NET_NS_FD, u32(fd)),
  linkinfo: (payload: Buffer) => nla(IFLA.LINKINFO, payload),
};

/** struct ifinfomsg, all zero: the peer's header inside VETH_INFO_PEER. */
const IFINFOMSG_LEN = 16;

export interface PeerSpec {
  ifname: string;
  mtu: number;
  mac: string;
  /** An open fd of the namespace the peer is born in. */
  netnsFd: number;
}

/** IFLA_LINKINFO of a veth pair whose peer is created, named and addressed inside the guest. */
export function vethLinkInfo(peer: PeerSpec): Buffer {
  const peerMsg = Buffer.concat([
    Buffer.alloc(IFINFOMSG_LEN),
    ifla.ifname(peer.ifname),
    ifla.mtu(peer.mtu),
    ifla.address(peer.mac),
    ifla.netnsFd(peer.netnsFd),
  ]);
  return ifla.linkinfo(Buffer.concat([nla(INFO.KIND, str('veth')), nla(INFO.DATA, nla(VETH_INFO_PEER, peerMsg))]));
}

export function macvlanLinkInfo(mode: keyof typeof MACVLAN_MODE): Buffer {
  return ifla.linkinfo(
    Buffer.concat([nla(INFO.KIND, str('macvlan')), nla(INFO.DATA, nla(IFLA_MACVLAN_MODE, u32(MACVLAN_MODE[mode])))]),
  );
}

/** IFLA_IPVLAN_MODE (linux/if_link.h: enum ipvlan_mode), a u16. */
const IFLA_IPVLAN_MODE = 1;
export const IPVLAN_MODE = { l2: 0, l3: 1, l3s: 2 } as const;

export function ipvlanLinkInfo(mode: keyof typeof IPVLAN_MODE): Buffer {
  return ifla.linkinfo(
    Buffer.concat([nla(INFO.KIND, str('ipvlan')), nla(INFO.DATA, nla(IFLA_IPVLAN_MODE, u16(IPVLAN_MODE[mode])))]),
  );
}

/** IFLA_VLAN_ID (linux/if_link.h), a u16; the protocol stays the kernel's default, 802.1Q. */
const IFLA_VLAN_ID = 1;

export function vlanLinkInfo(id: number): Buffer {
  return ifla.linkinfo(Buffer.concat([nla(INFO.KIND, str('vlan')), nla(INFO.DATA, nla(IFLA_VLAN_ID, u16(id)))]));
}

export function kindLinkInfo(kind: string): Buffer {
  return ifla.linkinfo(nla(INFO.KIND, str(kind)));
}

/** The kind in a link's IFLA_LINKINFO (veth, bridge, macvlan), if it has one. */
export function linkKind(linkinfo: Buffer | undefined): string | undefined {
  return linkinfo && readString(readAttrs(linkinfo).get(INFO.KIND));
}

const AF_INET = 2;
const IFLA_INET_CONF = 1;
const IPV4_DEVCONF_ARP_NOTIFY = 22;

/**
 * IFLA_AF_SPEC for AF_INET: arp_notify=1 on this device, so the kernel itself sends a gratuitous
 * ARP when the link comes up with its address (no arping process).
 */
export function arpNotifySpec(): Buffer {
  return nla(IFLA.AF_SPEC, nla(AF_INET, nla(IFLA_INET_CONF, nla(IPV4_DEVCONF_ARP_NOTIFY, u32(1)))));
}
