/** IP addresses as BigInt, so IPv4 and IPv6 ranges share one arithmetic. */
import ipaddr from 'ipaddr.js';
import type { Family } from './address.js';

export function toBig(ip: string): bigint {
  return ipaddr
    .parse(ip)
    .toByteArray()
    .reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

export function fromBig(n: bigint, family: Family): string {
  const len = family === 4 ? 4 : 16;
  const bytes: number[] = [];
  for (let i = 0; i < len; i++) bytes.unshift(Number((n >> BigInt(8 * i)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

/** First and last address of a prefix, as numbers. */
export function prefixBounds(network: string, prefix: number, family: Family): [bigint, bigint] {
  const bits = BigInt(family === 4 ? 32 : 128);
  const hostBits = bits - BigInt(prefix);
  const first = (toBig(network) >> hostBits) << hostBits;
  return [first, first + (1n << hostBits) - 1n];
}

export function overlaps(a: [bigint, bigint], b: [bigint, bigint]): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}
