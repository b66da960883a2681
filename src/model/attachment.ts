/**
 * One attachment, in two shapes, with the same field names from the CLI flag to the store column:
 *
 *   AttachSpec      what a front end asks for (CLI flags, pipework argv, apply file, run), in
 *                   canonical text. checkAttachSpec validates it before the host is touched; the
 *                   store keeps it as is, and two equal specs are the same request.
 *   AttachmentPlan  the spec resolved against the host by a link driver: link kind, host link
 *                   name, MAC, MTU, typed addresses and routes. What the kernel layer makes.
 */
import { UsageError } from '../util/errors.js';
import { formatIpConfig, parseIpConfig, parseRoute, type IpConfig, type RouteSpec } from './address.js';
import { macFromText } from './mac.js';
import { formatPublish, parsePublish, type PortSpec } from './publish.js';
import { formatRates, parseRates, type Rates } from './rate.js';
import {
  checkIfname,
  checkIpvlanMode,
  checkMac,
  checkMacvlanMode,
  checkMetric,
  checkMtu,
  checkObjectName,
  checkVlanId,
  type IpvlanMode,
  type MacvlanMode,
} from './validate.js';

/** The guest interface's name when none is given (pipework's argv defaults to eth1 itself). */
export const DEFAULT_IFNAME = 'eth0';

/** The host interface of a dummy: it has no host side (as `docker run --net=none` has no network). */
export const NO_HOST_IF = 'none';

/**
 * How the guest interface reaches the host: a veth pair on a bridge, a macvlan or ipvlan child of a
 * NIC, an 802.1q VLAN of a NIC, the NIC itself moved into the guest ("phys", pipework's
 * --direct-phys; moved back at detach), or not at all: a dummy, addresses the guest holds as its
 * own (a service address its routers send it) with no host side.
 */
export type LinkKind = 'veth' | 'macvlan' | 'ipvlan' | 'vlan' | 'phys' | 'dummy';

export interface AttachSpec {
  /** A bridge (created if missing), an existing NIC (macvlan parent, or moved with directPhys), or `none` (a dummy). */
  hostIf: string;
  /** The interface's name inside the guest (-i). */
  ifname: string;
  /** The host end of a veth pair, when the user names it (-l); else pipewright derives one. */
  hostLink: string | null;
  mac: string | null;
  mtu: number | null;
  macvlanMode: MacvlanMode | null;
  /** Set: an ipvlan child of the NIC in this mode instead of a macvlan. */
  ipvlanMode: IpvlanMode | null;
  /** Set: the guest interface is the NIC's 802.1q VLAN with this id (one guest per id and NIC). */
  vlan: number | null;
  /** `<ip>/<prefix>[@<gateway>]` (normalized) and `pool:<name>`; empty with dhcp. */
  addresses: string[];
  /** `<cidr>[@<via>]` or `default@<via>`, normalized. */
  routes: string[];
  dhcp: boolean;
  /** macvlan: the host's own macvlan on the parent, `<ip>/<prefix>`. */
  hostShim: string | null;
  /** `[<ip>:]<port>[-<end>]:<port>[-<end>]/<proto>`, as `docker run -p`. */
  publish: string[];
  directPhys: boolean;
  /** The metric of every route the attachment installs in the guest (lowest wins); null: the kernel's default. */
  metric: number | null;
  /** Bandwidth limits, `<ingress>[/<egress>]` (model/rate.ts), shaped on the host end of a veth. */
  rate: string | null;
  /** Source-based routing: traffic from the interface's addresses leaves by its own routes (a table of its own). */
  sbr: boolean;
}

/** What a front end hands over: the spec's own fields, optional ones left out, numbers and modes still as text. */
type TextFields = 'mtu' | 'macvlanMode' | 'ipvlanMode' | 'vlan' | 'metric';
export type AttachInput = Pick<AttachSpec, 'hostIf' | 'addresses'> & {
  [K in Exclude<keyof AttachSpec, 'hostIf' | 'addresses' | TextFields>]?: AttachSpec[K] | undefined;
} & {
  mtu?: number | string | null;
  macvlanMode?: string | null;
  ipvlanMode?: string | null;
  vlan?: number | string | null;
  metric?: number | string | null;
};

export interface AttachmentPlan {
  kind: LinkKind;
  hostIf: string;
  /** The host end of a veth pair; other kinds have none. */
  hostLink: string | null;
  ifname: string;
  mac: string;
  mtu: number;
  macvlanMode: MacvlanMode | null;
  ipvlanMode: IpvlanMode | null;
  vlan: number | null;
  addresses: IpConfig[];
  routes: RouteSpec[];
  /** The metric of the routes installed in the guest; null: the kernel's default. */
  metric: number | null;
  /** With --sbr: the table of its own that holds the interface's routes too (sbrTable); else null. */
  sbrTable: number | null;
}

/**
 * The table of an attachment's source-based routes: 10000 + its record's id, unique on the host
 * and the same across restores. Its rules sit at priority SBR_PREF, before the main table's.
 */
export const sbrTable = (recordId: number) => 10000 + recordId;
export const SBR_PREF = 10000;

/** `U:<text>` derives a stable MAC from text, as pipework does; anything else must be a unicast MAC. */
export function parseMac(text: string): string {
  return text.startsWith('U:') ? macFromText(text.slice(2)) : checkMac(text);
}

function checkShim(text: string): string {
  const shim = parseIpConfig(text);
  if (shim.gateway) throw new UsageError(`--host-shim ${text}: the host's shim address takes no gateway`);
  return formatIpConfig(shim);
}

function checkAddresses(texts: string[]): { addresses: string[]; dhcp: boolean } {
  if (texts.length === 0)
    throw new UsageError('give at least one address (<ip>/<prefix>[@<gateway>], pool:<name>) or dhcp');
  if (texts.includes('dhcp')) {
    if (texts.length > 1) throw new UsageError('dhcp cannot be combined with static addresses');
    return { addresses: [], dhcp: true };
  }
  const seen = new Set<string>();
  const addresses = texts.map((a) => {
    if (a.startsWith('pool:')) return `pool:${checkObjectName(a.slice(5), 'pool name')}`;
    const c = parseIpConfig(a);
    if (seen.has(c.address)) throw new UsageError(`address ${c.address} is given twice`);
    seen.add(c.address);
    return formatIpConfig(c);
  });
  return { addresses, dhcp: false };
}

const formatRoute = (r: RouteSpec) => `${r.dst}${r.via ? `@${r.via}` : ''}`;

/** The flags given that pick the link kind by hand. */
const kindFlags = (spec: AttachSpec) => [
  spec.directPhys && '--direct-phys',
  spec.vlan !== null && '--vlan',
  spec.ipvlanMode && '--ipvlan',
  spec.macvlanMode && '--macvlan-mode',
];

/** A dummy has no host side: nothing that needs one goes with it. */
function checkDummy(spec: AttachSpec): void {
  const given = [
    ...kindFlags(spec),
    spec.hostLink && '-l/--host-link',
    spec.hostShim && '--host-shim',
    spec.publish.length > 0 && '-p/--publish',
    spec.rate && '--rate',
    spec.dhcp && 'dhcp',
  ].filter(Boolean);
  if (given.length)
    throw new UsageError(
      `host interface ${NO_HOST_IF} gives a dummy, which has no host side: drop ${given.join(', ')}, or attach to a bridge or NIC`,
    );
}

/** At most one of the choices that pick the link kind by hand; none with a dummy. */
function checkKindChoice(spec: AttachSpec): AttachSpec {
  if (spec.hostIf === NO_HOST_IF) checkDummy(spec);
  const given = kindFlags(spec).filter(Boolean);
  if (given.length > 1) throw new UsageError(`${given.join(' and ')} choose different kinds of link; give one`);
  if (spec.mac && spec.ipvlanMode) throw new UsageError("an ipvlan has its parent's MAC; drop --mac or use a macvlan");
  if (spec.sbr && spec.dhcp)
    throw new UsageError('--sbr needs static or pool addresses: a DHCP lease sets its routes itself');
  return spec;
}

/** Validates every field and returns the canonical spec; throws a UsageError naming the bad value. */
export function checkAttachSpec(input: AttachInput): AttachSpec {
  const { addresses, dhcp } = checkAddresses(input.addresses);
  const opt = <T, R>(v: T | null | undefined, f: (v: T) => R): R | null =>
    v === undefined || v === null ? null : f(v);
  return checkKindChoice({
    hostIf: checkIfname(input.hostIf, 'host interface'),
    ifname: checkIfname(input.ifname ?? DEFAULT_IFNAME, 'container interface name'),
    hostLink: opt(input.hostLink, (v) => checkIfname(v, 'host interface name')),
    mac: opt(input.mac, parseMac),
    mtu: opt(input.mtu, checkMtu),
    macvlanMode: opt(input.macvlanMode, checkMacvlanMode),
    ipvlanMode: opt(input.ipvlanMode, checkIpvlanMode),
    vlan: opt(input.vlan, checkVlanId),
    addresses,
    routes: (input.routes ?? []).map((r) => formatRoute(parseRoute(r))),
    dhcp: dhcp || Boolean(input.dhcp),
    hostShim: opt(input.hostShim, checkShim),
    publish: (input.publish ?? []).map((p) => formatPublish(parsePublish(p))),
    directPhys: Boolean(input.directPhys),
    metric: opt(input.metric, checkMetric),
    rate: opt(input.rate, (v) => formatRates(parseRates(v))),
    sbr: Boolean(input.sbr),
  });
}

/** The settings an attachment changes in place (routes' metric, shaping); the rest make another link. */
const tunable = (s: AttachSpec) => [s.metric ?? null, s.rate ?? null];

/** The spec's fields in a fixed order, defaults filled: stored specs of older versions compare too. */
function canonical(s: AttachSpec): unknown[] {
  return [...linkFields(s), ...tunable(s)];
}

function linkFields(s: AttachSpec): unknown[] {
  return [
    s.hostIf,
    s.ifname,
    s.hostLink ?? null,
    s.mac ?? null,
    s.mtu ?? null,
    s.macvlanMode ?? null,
    s.addresses,
    s.routes,
    Boolean(s.dhcp),
    s.hostShim ?? null,
    s.publish ?? [],
    Boolean(s.directPhys),
    s.ipvlanMode ?? null,
    s.vlan ?? null,
    Boolean(s.sbr),
  ];
}

export function sameSpec(a: AttachSpec, b: AttachSpec): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** The same link, addresses and ports: the specs differ at most in what tuneAttachment changes in place. */
export function sameLink(a: AttachSpec, b: AttachSpec): boolean {
  return JSON.stringify(linkFields(a)) === JSON.stringify(linkFields(b));
}

/** The spec's limits, or null (records older than shaping have none). */
export function ratesOf(spec: AttachSpec): Rates | null {
  return spec.rate ? parseRates(spec.rate) : null;
}

/** The spec's choices of link the driver reads, and the routes' metric (absent in older records). */
export function linkOptions(spec: AttachSpec): Pick<AttachmentPlan, 'macvlanMode' | 'ipvlanMode' | 'vlan' | 'metric'> {
  return {
    macvlanMode: spec.macvlanMode ?? null,
    ipvlanMode: spec.ipvlanMode ?? null,
    vlan: spec.vlan ?? null,
    metric: spec.metric ?? null,
  };
}

/** The spec's static addresses, typed (pool ones are leased, DHCP ones come from the server). */
export function staticAddresses(spec: AttachSpec): IpConfig[] {
  return spec.addresses.filter((a) => !a.startsWith('pool:')).map(parseIpConfig);
}

/** The pools the spec takes an address from (`pool:<name>`). */
export function poolsOf(spec: AttachSpec): string[] {
  return spec.addresses.filter((a) => a.startsWith('pool:')).map((a) => a.slice(5));
}

export function routesOfSpec(spec: AttachSpec): RouteSpec[] {
  return spec.routes.map(parseRoute);
}

export function publishOf(spec: AttachSpec): PortSpec[] {
  return (spec.publish ?? []).map(parsePublish);
}

export function shimOf(spec: AttachSpec): IpConfig | null {
  return spec.hostShim ? parseIpConfig(spec.hostShim) : null;
}

/** Explicit routes plus one default route per family from the first address that names a gateway. */
export function routesOf(plan: Pick<AttachmentPlan, 'addresses' | 'routes'>): RouteSpec[] {
  const defaults: RouteSpec[] = [];
  for (const family of [4, 6] as const) {
    const gw = plan.addresses.find((a) => a.family === family && a.gateway);
    if (gw && !plan.routes.some((r) => r.dst === 'default' && r.family === family)) {
      defaults.push({ dst: 'default', family, via: gw.gateway });
    }
  }
  return [...defaults, ...plan.routes];
}
