/**
 * What a CNI runtime hands the plugin: the network configuration on stdin and the CNI_* variables,
 * read and checked before anything is touched. pipewright is either the main plugin
 * (`"type":"pipewright"`) or the IPAM plugin of another (`"ipam":{"type":"pipewright"}`).
 */
import type { CniBandwidth } from '../model/rate.js';
import { checkIfname, checkObjectName, hasControl } from '../model/validate.js';
import { CniError, ERR } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'];

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /**
   * pipewright as the main plugin: a bridge, or the parent NIC of a macvlan (mode: its mode), an
   * ipvlan or a VLAN; or a dummy.
   */
  bridge?: string;
  master?: string;
  mode?: string;
  /** With master: an ipvlan child in this mode (l2, l3, l3s) instead of a macvlan. */
  ipvlanMode?: string;
  /**
   * With master: the container's interface is the master's 802.1q VLAN of this id (as the CNI vlan
   * plugin's vlanId).
   */
  vlan?: number;
  /**
   * In place of bridge or master: the container's interface is a dummy, with no host side (as the
   * CNI dummy plugin's).
   */
  dummy?: boolean;
  hostShim?: string;
  /** The metric of the container's routes through this network (lowest wins), as netavark's "metric" option. */
  metric?: number;
  /** Source-based routing for the container's interface, as the CNI sbr plugin's. */
  sbr?: boolean;
  pool?: string;
  subnet?: string;
  gateway?: string;
  masquerade?: boolean;
  isolated?: boolean;
  mtu?: number;
  stateDir?: string;
  store?: string;
  dns?: object;
  ipam?: { type?: string; pool?: string; subnet?: string; gateway?: string; stateDir?: string; store?: string };
  /** bandwidth: the runtime's "bandwidth" capability, as the CNI bandwidth plugin takes it (bits/s, bits). */
  runtimeConfig?: { portMappings?: PortMapping[]; ips?: string[]; mac?: string; bandwidth?: CniBandwidth };
  args?: { cni?: { ips?: string[]; mac?: string } };
  prevResult?: CniResult;
  'cni.dev/valid-attachments'?: { containerID: string; ifname: string }[];
}

export interface CniResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: object;
}

/** The runtime's CNI_* variables for one call. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS, `K=V;K=V` (IP=, MAC=). */
  args: Map<string, string>;
}

function parseArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of text.split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new CniError(ERR.invalidEnv, `CNI_ARGS "${pair.slice(0, 40)}" is not KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND as CniCommand;
  if (!['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'].includes(command))
    throw new CniError(ERR.invalidEnv, `CNI_COMMAND "${String(command).slice(0, 20)}" is not a CNI command`);
  // VERSION reads nothing else (libcni's validation sends placeholders in the other variables).
  if (command === 'VERSION') return { command, containerId: '', netns: '', ifname: '', args: new Map() };
  const needs = (name: string, required: boolean) => {
    const v = env[name] ?? '';
    if (required && !v) throw new CniError(ERR.invalidEnv, `${name} is required for ${command}`);
    if (hasControl(v)) throw new CniError(ERR.invalidEnv, `${name} holds control characters`);
    return v;
  };
  const perContainer = ['ADD', 'DEL', 'CHECK'].includes(command);
  const containerId = needs('CNI_CONTAINERID', perContainer);
  // DEL must succeed without its namespace (it may be gone already).
  const netns = needs('CNI_NETNS', command === 'ADD' || command === 'CHECK');
  if (netns && !netns.startsWith('/')) throw new CniError(ERR.invalidEnv, 'CNI_NETNS must be an absolute path');
  const ifname = needs('CNI_IFNAME', perContainer);
  if (ifname) checkIfnameCni(ifname);
  return { command, containerId, netns, ifname, args: parseArgs(needs('CNI_ARGS', false)) };
}

function checkIfnameCni(ifname: string): void {
  try {
    checkIfname(ifname, 'CNI_IFNAME');
  } catch (err) {
    throw new CniError(ERR.invalidEnv, (err as Error).message);
  }
}

/** The configuration, decoded and checked (a name fit for the store, a version spoken here). */
export function parseNetconf(text: string): NetConf {
  let conf: NetConf;
  try {
    conf = JSON.parse(text) as NetConf;
  } catch {
    throw new CniError(ERR.decode, 'the network configuration on stdin is not JSON');
  }
  if (!conf || typeof conf !== 'object')
    throw new CniError(ERR.decode, 'the network configuration must be a JSON object');
  if (!SUPPORTED_VERSIONS.includes(conf.cniVersion)) {
    throw new CniError(
      ERR.incompatibleVersion,
      `cniVersion "${String(conf.cniVersion).slice(0, 20)}" is not one of ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  try {
    checkObjectName(conf.name, 'network name');
  } catch (err) {
    throw new CniError(ERR.invalidConfig, (err as Error).message);
  }
  return conf;
}

/** Whether pipewright serves as the IPAM plugin of another main plugin (bridge, macvlan, ...). */
export const isIpamMode = (conf: NetConf) => conf.type !== 'pipewright' && conf.ipam?.type === 'pipewright';
