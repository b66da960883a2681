/**
 * Input checks that run before anything touches the host. Each throws a UsageError whose message
 * names the bad value and the rule it broke.
 */
import { UsageError } from '../util/errors.js';

export const IFNAMSIZ = 16;

/**
 * Interface names: 1..15 bytes (the kernel's limit), only letters, digits, '_', '.' and '-', the
 * first not '.' or '-'. The kernel takes more, but these names end up in firewall rules and tool
 * argv, where `+` is an iptables wildcard (`-i br+` matches every br-* bridge), a quote or brace
 * breaks an nft script and a leading '-' reads as an option: only names read literally everywhere.
 */
export function checkIfname(name: string, what = 'interface name'): string {
  // A library caller's missing field (JavaScript has no types to stop it): one line, not a TypeError.
  if (typeof name !== 'string') throw new UsageError(`${what} is missing`);
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes >= IFNAMSIZ) {
    throw new UsageError(`${what} "${printable(name)}" must be 1 to ${IFNAMSIZ - 1} bytes long`);
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UsageError(
      `${what} "${printable(name)}" may use only letters, digits, '_', '.' and '-', and must start with a letter, digit or '_'`,
    );
  }
  return name;
}

/** A C0 control character or DEL: never part of a name or path pipewright accepts. */
export const isControl = (c: string) => c.charCodeAt(0) < 0x20 || c === '\x7f';
export const hasControl = (text: string) => [...text].some(isControl);

/** A value as it can be shown on one line of an error (control characters escaped). */
export function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

const MAC_RE = /^([0-9a-f]{2})(:[0-9a-f]{2}){5}$/i;

/** A unicast, non-zero Ethernet address, returned in lower case. */
export function checkMac(mac: string): string {
  if (!MAC_RE.test(mac)) throw new UsageError(`MAC address "${mac}" must look like 02:42:ac:11:00:02`);
  const lower = mac.toLowerCase();
  if (parseInt(lower.slice(0, 2), 16) & 1) {
    throw new UsageError(`MAC address "${mac}" is a multicast address; the first octet must be even`);
  }
  if (lower === '00:00:00:00:00:00') throw new UsageError('MAC address 00:00:00:00:00:00 is not usable');
  return lower;
}

/** 68 is IPv4's minimum MTU; 65535 the largest an Ethernet-like link here accepts. */
export function checkMtu(value: string | number): number {
  // Decimal digits only: "1e3" or "0x5dc" are numbers to JavaScript, not MTUs to an operator.
  const mtu = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new UsageError(`MTU "${value}" must be a whole number from 68 to 65535`);
  }
  return mtu;
}

/** A route metric (iproute2's `metric`, the kernel's priority): lowest wins; 0 is IPv6's "default" to the kernel. */
export function checkMetric(value: string | number): number {
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) {
    throw new UsageError(`metric "${printable(String(value))}" must be a whole number from 1 to 4294967295`);
  }
  return n;
}

export const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

export function checkMacvlanMode(mode: string): MacvlanMode {
  if (!(MACVLAN_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`macvlan mode "${mode}" must be one of ${MACVLAN_MODES.join(', ')}`);
  }
  return mode as MacvlanMode;
}

/** ipvlan's modes (linux/if_link.h): l2 switches frames, l3 and l3s route (l3s through netfilter). */
export const IPVLAN_MODES = ['l2', 'l3', 'l3s'] as const;
export type IpvlanMode = (typeof IPVLAN_MODES)[number];

export function checkIpvlanMode(mode: string): IpvlanMode {
  if (!(IPVLAN_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`ipvlan mode "${mode}" must be one of ${IPVLAN_MODES.join(', ')}`);
  }
  return mode as IpvlanMode;
}

/** An 802.1q VLAN id: 0 and 4095 are reserved by the standard. */
export function checkVlanId(value: string | number): number {
  const id = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(id) || id < 1 || id > 4094)
    throw new UsageError(`VLAN id "${value}" must be a whole number from 1 to 4094`);
  return id;
}

/** Names of netns, volumes, pools: what `ip netns` and Docker accept, and safe as a file name. */
export function checkObjectName(name: string, what: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name) || name.length > 128) {
    throw new UsageError(
      `${what} "${name}" must start with a letter or digit and use only letters, digits, '_', '.', '-'`,
    );
  }
  return name;
}
