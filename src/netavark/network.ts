/**
 * A podman network of driver "pipewright", as pipewright's CNI commands take it: each setup and
 * teardown becomes the CNI front end's ADD or DEL on a configuration made from the network and
 * the container's options, so both front ends run the same attach and detach.
 *
 *   -o parent=<nic> [-o mode=<macvlan mode>]   macvlans of that NIC, on its LAN
 *   otherwise                                  a bridge (-o bridge=<name>, default pw<id>) with the
 *                                              pool's gateway; masquerade unless --internal,
 *                                              -o isolate=true for isolation
 *   --subnet (one) or -o pool=<pool>           the addresses: a pool podman-<id> made for the
 *                                              network, or an operator's pool
 *   -o mtu=, -o state_dir=, -o store=          as the CNI plugin's mtu, stateDir, store
 *   -o metric=<n>                              the metric of the container's routes (netavark's own)
 *   -o rate=<ingress>[/<egress>]               a bridge network's bandwidth limits, as attach --rate
 */
import { checkIfname, checkMacvlanMode, checkMetric, checkMtu, checkObjectName, printable } from '../model/validate.js';
import { cniBandwidthOf, parseRates } from '../model/rate.js';
import { parseCidr } from '../model/address.js';
import { hostLinkInfo } from '../net/link-state/sysfs.js';
import { UsageError } from '../util/errors.js';
import type { CniEnv, NetConf, PortMapping } from '../cni/netconf.js';
import type { NetavarkExec, NetavarkNetwork, NetavarkPortMapping } from './types.js';

const OPTIONS = ['parent', 'mode', 'bridge', 'isolate', 'pool', 'mtu', 'metric', 'rate', 'state_dir', 'store'];

/** pipewright's name for a podman network: its pool and network record (netavark's has no remove call). */
export const storeName = (n: NetavarkNetwork) => `podman-${n.id.slice(0, 12)}`;

const optionsOf = (n: NetavarkNetwork): Record<string, string> => n.options ?? {};

function bool(value: string, what: string): boolean {
  if (!['true', 'false', '1', '0'].includes(value))
    throw new UsageError(`-o ${what}=${printable(value)}: give true or false`);
  return value === 'true' || value === '1';
}

/** The network's options and subnets, checked: a config podman may store. */
export function checkNetworkConfig(n: NetavarkNetwork): void {
  const o = optionsOf(n);
  for (const key of Object.keys(o))
    if (!OPTIONS.includes(key))
      throw new UsageError(`option ${printable(key)} is not one of pipewright's: ${OPTIONS.join(', ')}`);
  const subnets = n.subnets ?? [];
  if (o.pool) checkObjectName(o.pool, 'pool');
  if (o.pool ? subnets.length > 0 : subnets.length !== 1)
    throw new UsageError('give one --subnet (a pool made for the network) or -o pool=<pool> (an existing pool)');
  for (const s of subnets) parseCidr(s.subnet);
  if (o.mtu !== undefined) checkMtu(o.mtu);
  if (o.metric !== undefined) checkMetric(o.metric);
  if (o.rate !== undefined) {
    if (o.parent !== undefined)
      throw new UsageError('-o rate= shapes the host ends of a bridge network: macvlans (-o parent=) have none');
    parseRates(o.rate);
  }
  if (o.isolate !== undefined) bool(o.isolate, 'isolate');
  if (o.state_dir !== undefined && !o.state_dir.startsWith('/'))
    throw new UsageError(`-o state_dir=${printable(o.state_dir)}: give an absolute path`);
  if (o.parent !== undefined) checkParent(n, o.parent);
  else {
    if (o.mode !== undefined) throw new UsageError('-o mode= is a macvlan mode: give -o parent=<nic> with it');
    checkIfname(bridgeOf(n), 'bridge');
  }
}

/** At create: the parent NIC is there (a teardown must not need it, and setup's attach checks it again). */
export function checkParentPresent(n: NetavarkNetwork): void {
  const parent = optionsOf(n).parent;
  if (parent !== undefined && !hostLinkInfo(parent))
    throw new UsageError(`parent ${printable(parent)} is not an interface of this host`);
}

function checkParent(n: NetavarkNetwork, parent: string): void {
  checkIfname(parent, 'parent');
  if (optionsOf(n).bridge !== undefined) throw new UsageError('give -o parent= (macvlan) or -o bridge=, not both');
  if (optionsOf(n).isolate !== undefined) throw new UsageError('-o isolate is for bridge networks');
  if (optionsOf(n).mode !== undefined) checkMacvlanMode(optionsOf(n).mode);
}

/** The bridge of a bridge network: -o bridge=, else podman's --interface-name, else pw<first 12 of the ID>. */
export function bridgeOf(n: NetavarkNetwork): string {
  return optionsOf(n).bridge ?? (n.network_interface || `pw${n.id.slice(0, 12)}`);
}

/** podman's port mappings (a range of `range` ports, "tcp,udp") as CNI's, one port and protocol each. */
function portMappings(ports: NetavarkPortMapping[]): PortMapping[] {
  return ports.flatMap((p) =>
    p.protocol.split(',').flatMap((protocol) =>
      Array.from({ length: Math.max(1, p.range ?? 1) }, (_, i) => ({
        hostPort: p.host_port + i,
        containerPort: p.container_port + i,
        protocol,
        ...(p.host_ip ? { hostIP: p.host_ip } : {}),
      })),
    ),
  );
}

/** The CNI configuration and call that setup (ADD) or teardown (DEL) of this container amounts to. */
export function asCniCall(exec: NetavarkExec, netns: string, command: 'ADD' | 'DEL'): { conf: NetConf; env: CniEnv } {
  const n = exec.network;
  checkNetworkConfig(n);
  const o = optionsOf(n);
  const subnet = n.subnets?.[0];
  const name = storeName(n);
  const conf: NetConf = {
    cniVersion: '1.1.0',
    name,
    type: 'pipewright',
    ...(o.parent !== undefined
      ? { master: o.parent, ...(o.mode ? { mode: o.mode } : {}) }
      : {
          bridge: bridgeOf(n),
          masquerade: !n.internal,
          isolated: o.isolate !== undefined && bool(o.isolate, 'isolate'),
        }),
    ...(subnet
      ? { pool: name, subnet: subnet.subnet, ...(subnet.gateway ? { gateway: subnet.gateway } : {}) }
      : { pool: o.pool }),
    ...(o.mtu !== undefined ? { mtu: checkMtu(o.mtu) } : {}),
    ...(o.metric !== undefined ? { metric: checkMetric(o.metric) } : {}),
    ...(o.state_dir ? { stateDir: o.state_dir } : {}),
    ...(o.store ? { store: o.store } : {}),
    runtimeConfig: {
      portMappings: portMappings(exec.port_mappings ?? []),
      ips: exec.network_options.static_ips ?? [],
      ...(exec.network_options.static_mac ? { mac: exec.network_options.static_mac } : {}),
      ...(o.rate !== undefined ? { bandwidth: cniBandwidthOf(parseRates(o.rate)) } : {}),
    },
  };
  const env: CniEnv = {
    command,
    containerId: exec.container_id,
    netns,
    ifname: exec.network_options.interface_name,
    args: new Map(),
  };
  return { conf, env };
}
