/**
 * Published ports as `docker run -p` writes them:
 * [<host-ip>:]<host-port>[-<end>]:<ctr-port>[-<end>][/tcp|/udp], an IPv6 host address in brackets.
 * Pure parsing and formatting; ops/ports.ts records them, the firewall renders them.
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from '../util/errors.js';
import type { Family } from './address.js';

export type Proto = 'tcp' | 'udp';

export interface PortSpec {
  proto: Proto;
  /** '' for every address of both families; 0.0.0.0 or :: for every address of one; else one address. */
  hostIp: string;
  hostPort: number;
  hostPortEnd: number;
  ctrPort: number;
  ctrPortEnd: number;
}

const GRAMMAR =
  '[<host-ip>:]<host-port>:<container-port>[/tcp|/udp], as docker run -p (IPv6 in brackets: [2001:db8::1])';

function portRange(text: string, what: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  const [a, b] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [NaN, NaN];
  if (!m || a < 1 || b > 65535 || a > b)
    throw new UsageError(`${what} "${text}" must be a port (1-65535) or a range like 8000-8010`);
  return [a, b];
}

/** An IPv6 host address, in the form nft and ip6tables print (RFC 5952). */
function hostIp6(ip: string, text: string): string {
  if (!ipaddr.IPv6.isValid(ip) || ip.includes('%'))
    throw new UsageError(`port "${text}": "[${ip}]" is not an IPv6 address (no zone: [2001:db8::1])`);
  const addr = ipaddr.IPv6.parse(ip);
  const range = addr.range();
  if (range === 'loopback') {
    // The kernel has no route_localnet for IPv6: ::1 cannot be DNATed to a guest.
    throw new UsageError(`port "${text}": [::1] cannot be published (IPv6 has no route_localnet); use 127.0.0.1`);
  }
  if (range === 'ipv4Mapped' || range === 'multicast' || range === 'linkLocal')
    throw new UsageError(`port "${text}": the host address must be a global or unique-local IPv6 address, or [::]`);
  return addr.toRFC5952String();
}

/** The host address and the two port fields of the mapping (before /proto). */
function splitMapping(mapping: string, text: string): [string, string, string] {
  if (mapping.startsWith('[')) {
    const end = mapping.indexOf(']:');
    const ports = end < 0 ? [] : mapping.slice(end + 2).split(':');
    if (ports.length !== 2) throw new UsageError(`port "${text}" must be ${GRAMMAR}`);
    return [hostIp6(mapping.slice(1, end), text), ports[0], ports[1]];
  }
  const parts = mapping.split(':');
  if (parts.length < 2 || parts.length > 3) throw new UsageError(`port "${text}" must be ${GRAMMAR}`);
  const hostIp = parts.length === 3 ? parts[0] : '';
  if (hostIp && !ipaddr.IPv4.isValidFourPartDecimal(hostIp))
    throw new UsageError(`port "${text}": the host address must be IPv4, or IPv6 in brackets ([2001:db8::1])`);
  return [hostIp, parts[parts.length - 2], parts[parts.length - 1]];
}

export function parsePublish(text: string): PortSpec {
  const [mapping, protoText = 'tcp', extra] = text.split('/');
  if (extra !== undefined || (protoText !== 'tcp' && protoText !== 'udp')) {
    throw new UsageError(`port "${text}": the protocol must be /tcp or /udp`);
  }
  const [hostIp, hostText, ctrText] = splitMapping(mapping, text);
  const [hostPort, hostPortEnd] = portRange(hostText, 'host port');
  const [ctrPort, ctrPortEnd] = portRange(ctrText, 'container port');
  if (hostPortEnd - hostPort !== ctrPortEnd - ctrPort) {
    throw new UsageError(`port "${text}": host and container ranges must be the same length`);
  }
  return { proto: protoText, hostIp, hostPort, hostPortEnd, ctrPort, ctrPortEnd };
}

export const familyOf = (ip: string): Family => (ip.includes(':') ? 6 : 4);

/** The families a mapping publishes on (where the guest has an address of that family). */
export function publishFamilies(p: Pick<PortSpec, 'hostIp'>): Family[] {
  return p.hostIp ? [familyOf(p.hostIp)] : [4, 6];
}

/** The host address as the firewall matches it: '' for every address (0.0.0.0 and :: included). */
export const matchedHostIp = (hostIp: string): string => (hostIp === '0.0.0.0' || hostIp === '::' ? '' : hostIp);

/** The `<host-ip>:` part of -p ('' for every address), an IPv6 address in brackets. */
export const hostPart = (hostIp: string): string =>
  !hostIp ? '' : hostIp.includes(':') ? `[${hostIp}]:` : `${hostIp}:`;

export function formatPublish(
  p: Pick<PortSpec, 'proto' | 'hostIp' | 'hostPort' | 'hostPortEnd' | 'ctrPort'> & { ctrPortEnd?: number },
): string {
  const range = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const ctrEnd = p.ctrPortEnd ?? p.ctrPort + (p.hostPortEnd - p.hostPort);
  return `${hostPart(p.hostIp)}${range(p.hostPort, p.hostPortEnd)}:${range(p.ctrPort, ctrEnd)}/${p.proto}`;
}
