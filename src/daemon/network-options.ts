/**
 * The -o options of `docker network create -d pipewright`, checked before anything is made:
 *   bridge network   bridge=<name> (default pw-<id12>), masquerade= (default true, as Docker's own
 *                    bridge), isolated=, mtu=, rate=<ingress>[/<egress>] (each endpoint's limits)
 *   macvlan network  parent=<nic> (which makes it one), macvlan_mode=, host_shim=<ip/len>, mtu=
 *   on a VLAN        vlan=<id> beside parent=, or Docker's own spelling parent=<nic>.<id> where no
 *                    such interface exists: the links hang off that VLAN interface, made when missing
 */
import { hostLinkExists } from '../net/link-state/sysfs.js';
import { splitVlanName } from '../model/host-names.js';
import { formatRates, parseRates } from '../model/rate.js';
import { checkMacvlanMode, checkMtu, checkVlanId } from '../model/validate.js';
import type { NetworkRequest } from '../ops/network.js';
import { PipewrightError } from '../util/errors.js';
import { str } from './server.js';

const GENERIC = 'com.docker.network.generic';
const BRIDGE_OPTIONS = ['bridge', 'masquerade', 'isolated', 'mtu', 'rate'];
const PARENT_OPTIONS = ['parent', 'macvlan_mode', 'host_shim', 'vlan', 'mtu'];

export type NetworkOptions = Pick<
  NetworkRequest,
  'kind' | 'hostIf' | 'masquerade' | 'isolated' | 'mtu' | 'macvlanMode' | 'hostShim' | 'vlan' | 'rate'
>;

/** parent= and vlan=: the NIC and VLAN id, from either spelling. */
function parentAndVlan(opts: Record<string, unknown>): Pick<NetworkOptions, 'hostIf' | 'vlan'> {
  const parent = str(opts.parent);
  if (opts.vlan !== undefined) return { hostIf: parent, vlan: checkVlanId(str(opts.vlan)) };
  const dotted = hostLinkExists(parent) ? null : splitVlanName(parent);
  return dotted ? { hostIf: dotted.nic, vlan: checkVlanId(dotted.id) } : { hostIf: parent };
}

/** The -o options of `docker network create`: a bridge network's, or with parent= a macvlan network's. */
export function networkOptions(body: Record<string, unknown>, defaultBridge: string): NetworkOptions {
  const opts = ((body.Options as Record<string, unknown> | undefined)?.[GENERIC] ?? {}) as Record<string, unknown>;
  // Docker (28) sends every endpoint a MAC of its own and sets it in the container, which an ipvlan
  // (its parent's MAC, no other) refuses: no ipvlan network can work through a network plugin.
  if (opts.ipvlan_mode !== undefined) {
    throw new PipewrightError(
      '-o ipvlan_mode: Docker sets a MAC of its own on each endpoint, which an ipvlan cannot take; use Docker\'s ipvlan driver, or pipewright attach --ipvlan / the CNI netconf\'s "ipvlanMode"',
    );
  }
  const onParent = opts.parent !== undefined;
  const known = onParent ? PARENT_OPTIONS : BRIDGE_OPTIONS;
  for (const key of Object.keys(opts)) {
    if (!known.includes(key))
      throw new PipewrightError(
        `-o ${key}: a pipewright ${onParent ? 'macvlan' : 'bridge'} network takes the options ${known.join(', ')}`,
      );
  }
  const flag = (key: string, otherwise: boolean) => {
    const v = String(opts[key] ?? otherwise);
    if (v !== 'true' && v !== 'false') throw new PipewrightError(`-o ${key}=${v.slice(0, 20)}: must be true or false`);
    return v === 'true';
  };
  const mtu = opts.mtu === undefined ? {} : { mtu: checkMtu(str(opts.mtu)) };
  if (onParent) {
    return {
      kind: 'macvlan',
      ...parentAndVlan(opts),
      ...mtu,
      ...(opts.macvlan_mode === undefined ? {} : { macvlanMode: checkMacvlanMode(str(opts.macvlan_mode)) }),
      ...(opts.host_shim === undefined ? {} : { hostShim: str(opts.host_shim) }),
    };
  }
  // Masquerade by default: a container on Docker's own bridge reaches the outside, so one here does too.
  return {
    hostIf: opts.bridge === undefined ? defaultBridge : str(opts.bridge),
    masquerade: flag('masquerade', true),
    isolated: flag('isolated', false),
    ...mtu,
    ...(opts.rate === undefined ? {} : { rate: formatRates(parseRates(str(opts.rate))) }),
  };
}
