/**
 * The rtnetlink requests pipewright makes: links (create, change, delete, find by name), addresses
 * and routes, each one message with its answer; plus the two helpers every kernel step shares
 * (a host link's index from sysfs, a link made whole or not at all).
 */
import ipaddr from 'ipaddr.js';
import { readFileSync } from 'node:fs';
import { parseCidr, type IpConfig } from '../../model/address.js';
import { beforeStep } from '../../util/faults.js';
import { IFLA, ifla, nla, readAttrs, readString, readU32, u32 } from './attrs.js';
import { errno } from './errno.js';
import { malformed, NLM_F, RTM, type NlMessage } from './message.js';
import { hostSocket, type Requester } from './sockets.js';

const AF = { 4: 2, 6: 10 } as const;
const IFF_UP = 0x1;

/** struct ifinfomsg: family, type, index, flags and the mask of flags to change. */
export function ifinfomsg(index = 0, up?: boolean): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  if (up !== undefined) {
    b.writeUInt32LE(up ? IFF_UP : 0, 8);
    b.writeUInt32LE(IFF_UP, 12);
  }
  return b;
}

/** A link's index, name, flags and attributes, as an RTM_NEWLINK answer holds them. */
export interface LinkMessage {
  index: number;
  up: boolean;
  attrs: Map<number, Buffer>;
}

function parseLink(m: NlMessage): LinkMessage {
  return { index: m.body.readInt32LE(4), up: (m.body.readUInt32LE(8) & IFF_UP) !== 0, attrs: readAttrs(m.body, 16) };
}

/** Creates a link; one of that name already there is EEXIST. */
export async function newLink(sock: Requester, name: string, attrs: Buffer[]): Promise<void> {
  await sock.request(
    RTM.NEWLINK,
    NLM_F.CREATE | NLM_F.EXCL,
    Buffer.concat([ifinfomsg(), ...attrs]),
    `creating link ${name}`,
  );
}

/** Changes a link: its attributes, and up or down when `up` is given. */
export async function setLink(sock: Requester, index: number, attrs: Buffer[], up?: boolean): Promise<void> {
  await sock.request(RTM.SETLINK, 0, Buffer.concat([ifinfomsg(index, up), ...attrs]), `changing link ${index}`);
}

/** Deletes a link by name or index (either end of a veth takes both). */
export async function delLink(sock: Requester, which: string | number): Promise<void> {
  const body = typeof which === 'number' ? ifinfomsg(which) : Buffer.concat([ifinfomsg(), ifla.ifname(which)]);
  await sock.request(RTM.DELLINK, 0, body, `deleting link ${which}`);
}

/** The link of that name (or index) in the socket's namespace; ENODEV when there is none. */
export async function getLink(sock: Requester, which: string | number): Promise<LinkMessage> {
  const body = typeof which === 'number' ? ifinfomsg(which) : Buffer.concat([ifinfomsg(), ifla.ifname(which)]);
  const what = `reading link ${which}`;
  const [m] = await sock.request(RTM.GETLINK, 0, body, what);
  if (!m) throw malformed(what, 'an ack with no link');
  return parseLink(m);
}

/** Every link of the socket's namespace. */
export async function dumpLinks(sock: Requester): Promise<LinkMessage[]> {
  return (await sock.request(RTM.GETLINK, NLM_F.DUMP, ifinfomsg(), 'listing links')).map(parseLink);
}

/** A link's index inside the namespace a socket belongs to. */
export async function indexIn(sock: Requester, ifname: string): Promise<number> {
  return (await getLink(sock, ifname)).index;
}

/** A host link's index from sysfs (no round trip). */
export function hostIndex(name: string): number {
  return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8'));
}

const ipBytes = (ip: string) => Buffer.from(ipaddr.parse(ip).toByteArray());

const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
const IFA_F_NODAD = 0x02;

function ifaddrmsg(a: IpConfig, index: number, flags = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF[a.family], 0);
  b.writeUInt8(a.prefix, 1);
  b.writeUInt8(flags, 2);
  b.writeUInt32LE(index, 4);
  return b;
}

/** Adds an address to the link at `index`; IPv6 ones without DAD, so they are usable at once. */
export async function addAddress(sock: Requester, index: number, a: IpConfig, replace = false): Promise<void> {
  const local = ipBytes(a.address);
  const body = Buffer.concat([
    ifaddrmsg(a, index, a.family === 6 ? IFA_F_NODAD : 0),
    nla(IFA.LOCAL, local),
    nla(IFA.ADDRESS, local),
  ]);
  await sock.request(
    RTM.NEWADDR,
    NLM_F.CREATE | (replace ? NLM_F.REPLACE : NLM_F.EXCL),
    body,
    `adding ${a.address}/${a.prefix}`,
  );
}

export async function delAddress(sock: Requester, index: number, a: IpConfig): Promise<void> {
  await sock.request(
    RTM.DELADDR,
    0,
    Buffer.concat([ifaddrmsg(a, index), nla(IFA.LOCAL, ipBytes(a.address))]),
    `removing ${a.address}/${a.prefix}`,
  );
}

/** An address as the kernel lists it. */
export interface AddressMessage {
  index: number;
  family: 4 | 6;
  prefix: number;
  /** RT_SCOPE_*: 0 global, 253 link, 254 host. */
  scope: number;
  address: string;
}

/** Every address of the socket's namespace, both families. */
export async function dumpAddresses(sock: Requester): Promise<AddressMessage[]> {
  const answer = await sock.request(RTM.GETADDR, NLM_F.DUMP, Buffer.alloc(8), 'listing addresses');
  return answer.flatMap((m) => {
    const attrs = readAttrs(m.body, 8);
    const bytes = attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS);
    if (!bytes) return [];
    const family = m.body[0] === AF[6] ? 6 : 4;
    return [
      {
        index: m.body.readUInt32LE(4),
        family,
        prefix: m.body[1],
        scope: m.body[3],
        address: ipaddr.fromByteArray([...bytes]).toString(),
      },
    ];
  });
}

export const RT_SCOPE_LINK = 253;
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, TABLE: 15 } as const;
/** rtm_table for a table id that does not fit its byte (RTA_TABLE carries it). */
const RT_TABLE_COMPAT = 252;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;

export interface RouteSpec {
  family: 4 | 6;
  /** "a.b.c.d/len", or null for the default route. */
  dst: string | null;
  via?: string;
  oif: number;
  /** The route's metric (RTA_PRIORITY); null or absent: the kernel's default (0, IPv6 1024). */
  metric?: number | null;
  /** A routing table of its own (source-based routing); absent: main. */
  table?: number;
}

/** struct rtmsg and the attributes of one route of the main table. */
function routeMessage(r: RouteSpec): Buffer {
  const net = r.dst ? parseCidr(r.dst, 'route') : null;
  const [dst, len] = net ? [net.address, net.prefix] : [null, 0];
  const rtmsg = Buffer.from([
    AF[r.family],
    len,
    0,
    0,
    r.table === undefined ? RT_TABLE_MAIN : Math.min(r.table, RT_TABLE_COMPAT),
    RTPROT_BOOT,
    r.via ? 0 : RT_SCOPE_LINK,
    RTN_UNICAST,
    0,
    0,
    0,
    0,
  ]);
  const attrs = [
    ...(dst ? [nla(RTA.DST, ipBytes(dst))] : []),
    ...(r.via ? [nla(RTA.GATEWAY, ipBytes(r.via))] : []),
    nla(RTA.OIF, u32(r.oif)),
    ...(r.metric ? [nla(RTA.PRIORITY, u32(r.metric))] : []),
    ...(r.table === undefined ? [] : [nla(RTA.TABLE, u32(r.table))]),
  ];
  return Buffer.concat([rtmsg, ...attrs]);
}

/** Adds (or replaces) a route in the main table, as `ip route replace` does. */
export async function replaceRoute(sock: Requester, r: RouteSpec): Promise<void> {
  const what = `adding the route to ${r.dst ?? 'default'}`;
  await sock.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.REPLACE, routeMessage(r), what);
}

/** Deletes a route of the main table (one already gone is no error), as `ip route del` does. */
export async function deleteRoute(sock: Requester, r: RouteSpec): Promise<void> {
  await sock.request(RTM.DELROUTE, 0, routeMessage(r), `deleting the route to ${r.dst ?? 'default'}`).catch((err) => {
    if (errno(err) !== 'ESRCH') throw err;
  });
}

const FRA = { SRC: 2, PRIORITY: 6, TABLE: 15 } as const;
const FR_ACT_TO_TBL = 1;

/** A policy rule "from <src> lookup <table>" at priority `pref`, as `ip rule` makes it; no src: any (a delete's match). */
export interface RuleSpec {
  family: 4 | 6;
  src?: string;
  table: number;
  pref: number;
}

function ruleMessage(r: RuleSpec): Buffer {
  // struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
  const srcLen = r.src ? (r.family === 4 ? 32 : 128) : 0;
  const hdr = Buffer.from([AF[r.family], 0, srcLen, 0, RT_TABLE_COMPAT, 0, 0, FR_ACT_TO_TBL, 0, 0, 0, 0]);
  const attrs = [
    ...(r.src ? [nla(FRA.SRC, ipBytes(r.src))] : []),
    nla(FRA.PRIORITY, u32(r.pref)),
    nla(FRA.TABLE, u32(r.table)),
  ];
  return Buffer.concat([hdr, ...attrs]);
}

/** Adds the rule (one already there is no error: the same rule again). */
export async function addRule(sock: Requester, r: RuleSpec): Promise<void> {
  await sock
    .request(RTM.NEWRULE, NLM_F.CREATE | NLM_F.EXCL, ruleMessage(r), `adding the rule from ${r.src ?? 'all'}`)
    .catch((err: unknown) => {
      if (errno(err) !== 'EEXIST') throw err;
    });
}

/** Deletes one rule that matches; false when none did. */
export async function deleteRule(sock: Requester, r: RuleSpec): Promise<boolean> {
  return sock.request(RTM.DELRULE, 0, ruleMessage(r), `deleting a rule of table ${r.table}`).then(
    () => true,
    (err: unknown) => {
      if (errno(err) !== 'ENOENT') throw err;
      return false;
    },
  );
}

const NDA = { DST: 1, LLADDR: 2 } as const;
const NUD_STALE = 0x04;

/**
 * Sets the neighbour entry (ARP or NDP) of `a`'s address on link `index` to `lladdr`, as stale: used
 * at once, confirmed by the kernel's own probes later. struct ndmsg: family, padding, ifindex,
 * state, flags, type.
 */
export async function staleNeighbor(sock: Requester, index: number, a: IpConfig, lladdr: Buffer): Promise<void> {
  const ndmsg = Buffer.alloc(12);
  ndmsg.writeUInt8(AF[a.family], 0);
  ndmsg.writeInt32LE(index, 4);
  ndmsg.writeUInt16LE(NUD_STALE, 8);
  const body = Buffer.concat([ndmsg, nla(NDA.DST, ipBytes(a.address)), nla(NDA.LLADDR, lladdr)]);
  await sock.request(RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.REPLACE, body, `setting the neighbour entry of ${a.address}`);
}

/**
 * A route of the main table as the kernel lists it: its destination ("a.b.c.d/len", null for the
 * default), device and gateway (null for none).
 */
export interface RouteMessage {
  dst: string | null;
  oif: number;
  metric: number;
  gateway: string | null;
}

/** The main table's routes of one family. */
export async function dumpRoutes(sock: Requester, family: 4 | 6): Promise<RouteMessage[]> {
  const rtmsg = Buffer.alloc(12);
  rtmsg[0] = AF[family];
  const answer = await sock.request(RTM.GETROUTE, NLM_F.DUMP, rtmsg, 'listing routes');
  return answer.flatMap((m) => {
    if (m.body[4] !== RT_TABLE_MAIN) return [];
    const attrs = readAttrs(m.body, 12);
    const [dst, gateway] = [attrs.get(RTA.DST), attrs.get(RTA.GATEWAY)];
    return [
      {
        dst: dst ? `${ipaddr.fromByteArray([...dst]).toString()}/${m.body[1]}` : null,
        oif: readU32(attrs.get(RTA.OIF)) ?? 0,
        metric: readU32(attrs.get(RTA.PRIORITY)) ?? 0,
        gateway: gateway ? ipaddr.fromByteArray([...gateway]).toString() : null,
      },
    ];
  });
}

/** The name in a link message. */
export const linkName = (l: LinkMessage) => readString(l.attrs.get(IFLA.IFNAME)) ?? '';

/** Deletes a host link (either end of a veth takes both). */
export async function deleteHostLink(name: string): Promise<void> {
  // By name, not by an index read from sysfs: a link the kernel is unregistering (its guest's
  // namespace just went) answers sysfs reads with EINVAL, and one gone with ENODEV here: both done.
  await delLink(hostSocket(), name).catch((err: unknown) => {
    if (errno(err) !== 'ENODEV') throw err;
  });
}

/**
 * Creates a host link with one message, then finishes it with more (master, up, an address). A
 * link that could not be finished is deleted again: a half-made link has no record pointing at it,
 * so nothing else would ever remove it. "finish link <name>" is a fault-seam step.
 */
export async function createFinishedLink(
  name: string,
  create: () => Promise<unknown>,
  finish: () => Promise<unknown>,
): Promise<void> {
  await create();
  try {
    beforeStep(`finish link ${name}`);
    await finish();
  } catch (err) {
    await deleteHostLink(name).catch(() => {});
    throw err;
  }
}
