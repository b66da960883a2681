/**
 * Published ports, as `docker run -p` writes them: [<host-ip>:]<host-port>[-<end>]:<ctr-port>[-<end>][/tcp|/udp].
 * Parsing is pure; publishing records the mapping (refusing a host port already published, naming
 * its owner) and leaves the rules to the firewall sync.
 */
import ipaddr from 'ipaddr.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { conflictingPort, insertPort } from '../store/networks.js';
import type { Store } from '../store/store.js';
import type { IpConfig } from '../model/address.js';
import type { Proto } from '../firewall/rules.js';
import { fromBig, prefixBounds } from '../ipam/ipmath.js';

export interface PortSpec {
  proto: Proto;
  hostIp: string;
  hostPort: number;
  hostPortEnd: number;
  ctrPort: number;
  ctrPortEnd: number;
}

function portRange(text: string, what: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  const [a, b] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [NaN, NaN];
  if (!m || a < 1 || b > 65535 || a > b) throw new UsageError(`${what} "${text}" must be a port (1-65535) or a range like 8000-8010`);
  return [a, b];
}

export function parsePublish(text: string): PortSpec {
  const [mapping, protoText = 'tcp', extra] = text.split('/');
  if (extra !== undefined || (protoText !== 'tcp' && protoText !== 'udp')) {
    throw new UsageError(`port "${text}": the protocol must be /tcp or /udp`);
  }
  const parts = mapping.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(`port "${text}" must be [<host-ip>:]<host-port>:<container-port>[/tcp|/udp], as docker run -p`);
  }
  const hostIp = parts.length === 3 ? parts[0] : '';
  if (hostIp && !ipaddr.IPv4.isValidFourPartDecimal(hostIp)) {
    throw new UsageError(`port "${text}": the host address must be IPv4 (IPv6 port publishing is not supported yet)`);
  }
  const [hostPort, hostPortEnd] = portRange(parts[parts.length - 2], 'host port');
  const [ctrPort, ctrPortEnd] = portRange(parts[parts.length - 1], 'container port');
  if (hostPortEnd - hostPort !== ctrPortEnd - ctrPort) {
    throw new UsageError(`port "${text}": host and container ranges must be the same length`);
  }
  return { proto: protoText, hostIp, hostPort, hostPortEnd, ctrPort, ctrPortEnd };
}

export function formatPublish(p: Pick<PortSpec, 'proto' | 'hostIp' | 'hostPort' | 'hostPortEnd' | 'ctrPort'> & { ctrPortEnd?: number }): string {
  const range = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const ctrEnd = p.ctrPortEnd ?? p.ctrPort + (p.hostPortEnd - p.hostPort);
  return `${p.hostIp ? `${p.hostIp}:` : ''}${range(p.hostPort, p.hostPortEnd)}:${range(p.ctrPort, ctrEnd)}/${p.proto}`;
}

/** Records the guest's published ports (inside the caller's transaction). */
export function recordPorts(
  store: Store, attachmentId: number, guestName: string, bridge: string, addresses: IpConfig[], ports: PortSpec[],
): void {
  const v4 = addresses.find((a) => a.family === 4);
  if (!v4) throw new PipewrightError('publishing ports needs an IPv4 address on the guest interface');
  const ctrSubnet = `${fromBig(prefixBounds(v4.address, v4.prefix, 4)[0], 4)}/${v4.prefix}`;
  for (const p of ports) {
    const taken = conflictingPort(store, p);
    if (taken) {
      throw new PipewrightError(`host port ${formatPublish(p).split(':').slice(0, -1).join(':')}/${p.proto} is already published by ${taken.guestName} (${formatPublish(taken)})`);
    }
    insertPort(store, { attachmentId, guestName, bridge, proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, hostPortEnd: p.hostPortEnd, ctrIp: v4.address, ctrSubnet, ctrPort: p.ctrPort });
  }
}
