/**
 * The text form of an attach (what the CLI, pipework argv and later spec files give) checked and
 * turned into an AttachRequest. Everything is validated here, before the host is touched.
 */
import { UsageError } from '../util/errors.js';
import { parseIpConfig, parseRoute, type IpConfig } from './address.js';
import type { AttachRequest } from '../ops/attach.js';
import { macFromText } from './mac.js';
import { parsePublish } from '../ops/ports.js';
import { checkIfname, checkMac, checkMacvlanMode, checkMtu, checkObjectName } from './validate.js';

export interface AttachText {
  hostIf: string;
  addresses: string[];
  ifname?: string;
  hostIfname?: string;
  mac?: string;
  mtu?: string;
  macvlanMode?: string;
  routes?: string[];
  hostShim?: string;
  directPhys?: boolean;
  publish?: string[];
}

/** `U:<text>` derives a stable MAC from text, as pipework does; anything else must be a unicast MAC. */
export function parseMac(text: string): string {
  return text.startsWith('U:') ? macFromText(text.slice(2)) : checkMac(text);
}

function parseShim(text: string): IpConfig {
  const shim = parseIpConfig(text);
  if (shim.gateway) throw new UsageError(`--host-shim ${text}: the host's shim address takes no gateway`);
  return shim;
}

export function parseAttachText(t: AttachText): AttachRequest {
  checkIfname(t.hostIf, 'host interface');
  if (t.addresses.length === 0) throw new UsageError('give at least one address (<ip>/<prefix>[@<gateway>], pool:<name>) or dhcp');
  const dhcp = t.addresses.includes('dhcp');
  if (dhcp && t.addresses.length > 1) throw new UsageError('dhcp cannot be combined with static addresses');
  const pools = t.addresses.filter((a) => a.startsWith('pool:')).map((a) => checkObjectName(a.slice(5), 'pool name'));
  const addresses = dhcp ? [] : t.addresses.filter((a) => !a.startsWith('pool:')).map(parseIpConfig);
  const seen = new Set<string>();
  for (const a of addresses) {
    if (seen.has(a.address)) throw new UsageError(`address ${a.address} is given twice`);
    seen.add(a.address);
  }
  return {
    hostIf: t.hostIf,
    ifname: t.ifname === undefined ? undefined : checkIfname(t.ifname, 'container interface name'),
    hostLink: t.hostIfname === undefined ? undefined : checkIfname(t.hostIfname, 'host interface name'),
    mac: t.mac === undefined ? undefined : parseMac(t.mac),
    mtu: t.mtu === undefined ? undefined : checkMtu(t.mtu),
    macvlanMode: t.macvlanMode === undefined ? undefined : checkMacvlanMode(t.macvlanMode),
    addresses,
    pools,
    routes: (t.routes ?? []).map(parseRoute),
    dhcp,
    directPhys: Boolean(t.directPhys),
    publish: (t.publish ?? []).map(parsePublish),
    hostShim: t.hostShim === undefined ? undefined : parseShim(t.hostShim),
  };
}
