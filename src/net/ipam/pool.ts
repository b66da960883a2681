/**
 * An address pool: a subnet, the range inside it that is handed out, and what never is (network,
 * broadcast, gateway, exclusions). Pure data and arithmetic; storage lives in the backends.
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from '../../util/errors.js';
import { parseCidr, type Family } from '../../model/address.js';
import { checkObjectName } from '../../model/validate.js';
import { parseLabels } from '../../util/labels.js';
import { fromBig, overlaps, prefixBounds, toBig } from '../../model/ipmath.js';

export interface Pool {
  name: string;
  /** Normalized network/prefix. */
  subnet: string;
  family: Family;
  prefix: number;
  gateway: string | null;
  rangeStart: string;
  rangeEnd: string;
  exclude: string[];
  labels: Record<string, string>;
  createdAt: string;
}

export interface PoolInput {
  name: string;
  cidr: string;
  gateway?: string;
  range?: string;
  exclude?: string[];
  labels?: string[];
  /** No gateway at all (a routed or isolated network). */
  noGateway?: boolean;
}

function parseSubnet(cidr: string): { network: string; prefix: number; family: Family } {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(cidr);
  } catch {
    throw new UsageError(`pool subnet "${cidr}" is not a CIDR such as 10.10.0.0/16 or fd10::/64`);
  }
  const [addr, prefix] = parsed;
  const family: Family = addr.kind() === 'ipv4' ? 4 : 6;
  const max = family === 4 ? 30 : 126;
  if (prefix > max) throw new UsageError(`pool subnet "${cidr}" is too small to hand out addresses (at most /${max})`);
  const [first] = prefixBounds(addr.toString(), prefix, family);
  return { network: fromBig(first, family), prefix, family };
}

function inSubnet(ip: string, bounds: [bigint, bigint], family: Family, what: string): bigint {
  if (!ipaddr.isValid(ip) || ipaddr.parse(ip).kind() !== (family === 4 ? 'ipv4' : 'ipv6')) {
    throw new UsageError(`${what} "${ip}" is not an IPv${family} address`);
  }
  const n = toBig(ip);
  if (n < bounds[0] || n > bounds[1]) throw new UsageError(`${what} ${ip} is outside the pool's subnet`);
  return n;
}

/** Checks a pool definition and fills in the defaults (gateway = first host, range = all hosts). */
export function definePool(input: PoolInput, now = new Date()): Pool {
  checkObjectName(input.name, 'pool name');
  const { network, prefix, family } = parseSubnet(input.cidr);
  const bounds = prefixBounds(network, prefix, family);
  const hostsFirst = bounds[0] + 1n;
  const hostsLast = family === 4 ? bounds[1] - 1n : bounds[1];
  let [start, end] = [hostsFirst, hostsLast];
  if (input.range) {
    const [a, b, extra] = input.range.split('-');
    if (!b || extra !== undefined) throw new UsageError(`range "${input.range}" must be <start>-<end>`);
    [start, end] = [inSubnet(a, bounds, family, 'range start'), inSubnet(b, bounds, family, 'range end')];
    if (start > end) throw new UsageError(`range "${input.range}" ends before it starts`);
    if (start < hostsFirst || end > hostsLast)
      throw new UsageError(`range "${input.range}" includes the network or broadcast address`);
  }
  let gateway: string | null = null;
  if (!input.noGateway) {
    gateway = input.gateway ?? fromBig(hostsFirst, family);
    gateway = fromBig(inSubnet(gateway, bounds, family, 'gateway'), family);
  }
  const exclude = (input.exclude ?? []).map((e) => normalizeExclude(e, bounds, family));
  return {
    name: input.name,
    subnet: `${network}/${prefix}`,
    family,
    prefix,
    gateway,
    rangeStart: fromBig(start, family),
    rangeEnd: fromBig(end, family),
    exclude,
    labels: parseLabels(input.labels ?? []),
    createdAt: now.toISOString(),
  };
}

function normalizeExclude(text: string, bounds: [bigint, bigint], family: Family): string {
  if (!text.includes('/')) return fromBig(inSubnet(text, bounds, family, 'excluded address'), family);
  const { network, prefix, family: f } = parseSubnetLoose(text);
  if (f !== family) throw new UsageError(`excluded range ${text} is not IPv${family}`);
  return `${network}/${prefix}`;
}

function parseSubnetLoose(cidr: string): { network: string; prefix: number; family: Family } {
  try {
    const [addr, prefix] = ipaddr.parseCIDR(cidr);
    const family: Family = addr.kind() === 'ipv4' ? 4 : 6;
    return { network: fromBig(prefixBounds(addr.toString(), prefix, family)[0], family), prefix, family };
  } catch {
    throw new UsageError(`excluded range "${cidr}" is not a CIDR`);
  }
}

export function poolBounds(p: Pool): [bigint, bigint] {
  return prefixBounds(parseCidr(p.subnet).address, p.prefix, p.family);
}

export function poolsOverlap(a: Pool, b: Pool): boolean {
  return a.family === b.family && overlaps(poolBounds(a), poolBounds(b));
}

/** How many addresses the range holds (the allocator's cursor runs from 0 to this). */
export function rangeSize(p: Pool): bigint {
  return toBig(p.rangeEnd) - toBig(p.rangeStart) + 1n;
}

export function addressAt(p: Pool, offset: number): string {
  return fromBig(toBig(p.rangeStart) + BigInt(offset), p.family);
}

/** Never handed out: the gateway and anything excluded (network and broadcast are outside the range). */
export function isWithheld(p: Pool, ip: string): boolean {
  if (ip === p.gateway) return true;
  const n = toBig(ip);
  return p.exclude.some((e) => {
    if (!e.includes('/')) return toBig(e) === n;
    const net = parseCidr(e);
    const [lo, hi] = prefixBounds(net.address, net.prefix, p.family);
    return n >= lo && n <= hi;
  });
}

function within(p: Pool, ip: string, lo: bigint, hi: bigint): boolean {
  if (!ipaddr.isValid(ip) || ipaddr.parse(ip).kind() !== (p.family === 4 ? 'ipv4' : 'ipv6')) return false;
  const n = toBig(ip);
  return n >= lo && n <= hi;
}

/** Inside the handed-out range. */
export function inRange(p: Pool, ip: string): boolean {
  return within(p, ip, toBig(p.rangeStart), toBig(p.rangeEnd));
}

/** Inside the pool's subnet (a static address may sit outside the range, but not outside the subnet). */
export function inSubnetOf(p: Pool, ip: string): boolean {
  return within(p, ip, ...poolBounds(p));
}

/** An IPv4 subnet's first and last address (IPv6 has no broadcast; its subnet-router anycast is the first). */
export function isNetworkOrBroadcast(p: Pool, ip: string): boolean {
  const [first, last] = poolBounds(p);
  const n = toBig(ip);
  return n === first || (p.family === 4 && n === last);
}
