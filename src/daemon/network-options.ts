/**
 * The -o options of `docker network create -d pipewright`, checked before anything is made:
 *   bridge network   bridge=<name> (default pw-<id12>), masquerade= (default true, as Docker's own
 *                    bridge), isolated=, mtu=
 *   macvlan network  parent=<nic> (which makes it one), macvlan_mode=, host_shim=<ip/len>, mtu=
 */
import { checkMacvlanMode, checkMtu } from '../model/validate.js';
import type { NetworkRequest } from '../ops/network.js';
import { PipewrightError } from '../util/errors.js';
import { str } from './server.js';

const GENERIC = 'com.docker.network.generic';
const BRIDGE_OPTIONS = ['bridge', 'masquerade', 'isolated', 'mtu'];
const MACVLAN_OPTIONS = ['parent', 'macvlan_mode', 'host_shim', 'mtu'];

export type NetworkOptions = Pick<NetworkRequest, 'kind' | 'bridge' | 'masquerade' | 'isolated' | 'mtu' | 'macvlanMode' | 'hostShim'>;

/** The -o options of `docker network create`: a bridge network's, or with parent= a macvlan network's. */
export function networkOptions(body: Record<string, unknown>, defaultBridge: string): NetworkOptions {
  const opts = ((body.Options as Record<string, unknown> | undefined)?.[GENERIC] ?? {}) as Record<string, unknown>;
  const macvlan = opts.parent !== undefined;
  const known = macvlan ? MACVLAN_OPTIONS : BRIDGE_OPTIONS;
  for (const key of Object.keys(opts)) {
    if (!known.includes(key))
      throw new PipewrightError(`-o ${key}: a pipewright ${macvlan ? 'macvlan' : 'bridge'} network takes the options ${known.join(', ')}`);
  }
  const flag = (key: string, otherwise: boolean) => {
    const v = String(opts[key] ?? otherwise);
    if (v !== 'true' && v !== 'false') throw new PipewrightError(`-o ${key}=${v.slice(0, 20)}: must be true or false`);
    return v === 'true';
  };
  const mtu = opts.mtu === undefined ? {} : { mtu: checkMtu(str(opts.mtu)) };
  if (macvlan) {
    return {
      kind: 'macvlan',
      bridge: str(opts.parent),
      ...mtu,
      ...(opts.macvlan_mode === undefined ? {} : { macvlanMode: checkMacvlanMode(str(opts.macvlan_mode)) }),
      ...(opts.host_shim === undefined ? {} : { hostShim: str(opts.host_shim) }),
    };
  }
  // Masquerade by default: a container on Docker's own bridge reaches the outside, so one here does too.
  return {
    bridge: opts.bridge === undefined ? defaultBridge : str(opts.bridge),
    masquerade: flag('masquerade', true),
    isolated: flag('isolated', false),
    ...mtu,
  };
}
