/**
 * Published ports as `docker run -p` writes them: [<host-ip>:]<host-port>[-<end>]:<ctr-port>[-<end>][/tcp|/udp].
 * Pure parsing and formatting; ops/ports.ts records them, the firewall renders them.
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from '../util/errors.js';

export type Proto = 'tcp' | 'udp';

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
  if (!m || a < 1 || b > 65535 || a > b)
    throw new UsageError(`${what} "${text}" must be a port (1-65535) or a range like 8000-8010`);
  return [a, b];
}

export function parsePublish(text: string): PortSpec {
  const [mapping, protoText = 'tcp', extra] = text.split('/');
  if (extra !== undefined || (protoText !== 'tcp' && protoText !== 'udp')) {
    throw new UsageError(`port "${text}": the protocol must be /tcp or /udp`);
  }
  const parts = mapping.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new UsageError(
      `port "${text}" must be [<host-ip>:]<host-port>:<container-port>[/tcp|/udp], as docker run -p`,
    );
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

export function formatPublish(
  p: Pick<PortSpec, 'proto' | 'hostIp' | 'hostPort' | 'hostPortEnd' | 'ctrPort'> & { ctrPortEnd?: number },
): string {
  const range = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const ctrEnd = p.ctrPortEnd ?? p.ctrPort + (p.hostPortEnd - p.hostPort);
  return `${p.hostIp ? `${p.hostIp}:` : ''}${range(p.hostPort, p.hostPortEnd)}:${range(p.ctrPort, ctrEnd)}/${p.proto}`;
}
