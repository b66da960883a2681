/**
 * Addresses and routes as users write them (`10.0.0.5/24@10.0.0.1`, `10.1.0.0/16@10.0.0.254`),
 * parsed and checked with ipaddr.js into plain data the kernel layer renders.
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from '../util/errors.js';

export type Family = 4 | 6;

/** One address on the guest interface, with the gateway that becomes its default route. */
export interface IpConfig {
  address: string;
  prefix: number;
  family: Family;
  gateway?: string;
}

/** One route in the guest: destination network (CIDR, or "default") and optional next hop. */
export interface RouteSpec {
  dst: string;
  family: Family;
  via?: string;
}

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

function familyOf(addr: Addr): Family {
  return addr.kind() === 'ipv4' ? 4 : 6;
}

function parseIp(text: string, what: string): Addr {
  if (!ipaddr.isValid(text)) throw new UsageError(`${what} "${text}" is not an IPv4 or IPv6 address`);
  const addr = ipaddr.parse(text);
  // An IPv4-mapped IPv6 address is the IPv4 address as far as a guest is concerned.
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
    ? (addr as ipaddr.IPv6).toIPv4Address()
    : addr;
}

function checkedCidr(text: string, what: string): [Addr, number] {
  const slash = text.lastIndexOf('/');
  if (slash < 0) throw new UsageError(`${what} "${text}" needs a prefix length, e.g. 10.0.0.5/24`);
  const addr = parseIp(text.slice(0, slash), what);
  const prefixText = text.slice(slash + 1);
  const max = familyOf(addr) === 4 ? 32 : 128;
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > max) {
    throw new UsageError(`${what} "${text}" has a bad prefix length (0 to ${max})`);
  }
  return [addr, prefix];
}

/** A network or an address with its prefix length: `10.1.0.0/16`, `fd00::5/64`. */
export interface Cidr {
  /** As written before the slash. */
  address: string;
  prefix: number;
  family: Family;
}

/** `<ip>/<prefix>` as a Cidr; a bad one is refused in one line naming `what`. */
export function parseCidr(text: string, what = 'subnet'): Cidr {
  const [addr, prefix] = checkedCidr(text, what);
  return { address: text.slice(0, text.lastIndexOf('/')), prefix, family: familyOf(addr) };
}

export function formatCidr(cidr: Pick<Cidr, 'address' | 'prefix'>): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** The address of `<ip>[/<prefix>]` as others hand it over (Docker, CNI runtimes): a bare address is its own. */
export function addressOf(text: string): string {
  const slash = text.indexOf('/');
  return slash < 0 ? text : text.slice(0, slash);
}

/**
 * True when two CIDRs name the same network however written (`10.1.0.0/24`, `fd00:0::/64`); a bad
 * one is refused naming `what`.
 */
export function sameSubnet(a: string, b: string, what = 'subnet'): boolean {
  const [[x, px], [y, py]] = [checkedCidr(a, what), checkedCidr(b, what)];
  return px === py && x.kind() === y.kind() && x.toNormalizedString() === y.toNormalizedString();
}

/** True when `ip` lies inside `network/prefix` (same family). */
export function contains(network: string, prefix: number, ip: string): boolean {
  const a = parseIp(network, 'network');
  const b = parseIp(ip, 'address');
  return a.kind() === b.kind() && b.match(a, prefix);
}

/** `<ip>/<prefix>[@<gateway>]`: the gateway must be in the subnet and not the address itself. */
export function parseIpConfig(text: string): IpConfig {
  const [cidrText, gwText, extra] = text.split('@');
  if (extra !== undefined) throw new UsageError(`address "${text}" has more than one '@'`);
  const [addr, prefix] = checkedCidr(cidrText, 'address');
  const family = familyOf(addr);
  const config: IpConfig = { address: addr.toString(), prefix, family };
  if (family === 4 && prefix < 31) {
    const net = ipaddr.IPv4.networkAddressFromCIDR(`${config.address}/${prefix}`).toString();
    const bcast = ipaddr.IPv4.broadcastAddressFromCIDR(`${config.address}/${prefix}`).toString();
    if (config.address === net || config.address === bcast) {
      throw new UsageError(
        `address "${cidrText}" is the ${config.address === net ? 'network' : 'broadcast'} address of its subnet`,
      );
    }
  }
  if (gwText !== undefined) {
    const gw = parseIp(gwText, 'gateway');
    if (familyOf(gw) !== family) throw new UsageError(`gateway ${gwText} is not of the same family as ${cidrText}`);
    if (!gw.match(addr, prefix)) throw new UsageError(`gateway ${gwText} is outside the subnet of ${cidrText}`);
    if (gw.toString() === config.address) throw new UsageError(`gateway ${gwText} is the address itself`);
    config.gateway = gw.toString();
  }
  return config;
}

/** `<cidr>[@<gw>]` or `default@<gw>`; the destination is normalized to its network address. */
export function parseRoute(text: string): RouteSpec {
  const [dstText, viaText, extra] = text.split('@');
  if (extra !== undefined) throw new UsageError(`route "${text}" has more than one '@'`);
  let route: RouteSpec;
  if (dstText === 'default') {
    if (viaText === undefined) throw new UsageError(`route "${text}": a default route needs @<gateway>`);
    const via = parseIp(viaText, 'gateway');
    route = { dst: 'default', family: familyOf(via) };
  } else {
    const [addr, prefix] = checkedCidr(dstText, 'route destination');
    const family = familyOf(addr);
    const net =
      family === 4
        ? ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${prefix}`)
        : ipaddr.IPv6.networkAddressFromCIDR(`${addr}/${prefix}`);
    route = { dst: `${net.toString()}/${prefix}`, family };
  }
  if (viaText !== undefined) {
    const via = parseIp(viaText, 'gateway');
    if (familyOf(via) !== route.family) throw new UsageError(`route "${text}" mixes IPv4 and IPv6`);
    route.via = via.toString();
  }
  return route;
}

export function formatIpConfig(c: IpConfig): string {
  return `${c.address}/${c.prefix}${c.gateway ? `@${c.gateway}` : ''}`;
}
