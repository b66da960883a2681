/**
 * What netavark hands a plugin (its plugin-API.md, types.rs): a network config for `create`, and
 * for `setup`/`teardown` the network with one container's options. Read and checked before the
 * host is touched; only the fields pipewright uses are typed.
 */
import { checkIfname, printable } from '../model/validate.js';
import { UsageError } from '../util/errors.js';

export interface NetavarkSubnet {
  subnet: string;
  gateway?: string | null;
  lease_range?: unknown;
}

export interface NetavarkNetwork {
  name: string;
  id: string;
  driver: string;
  network_interface?: string | null;
  subnets?: NetavarkSubnet[] | null;
  ipv6_enabled?: boolean;
  internal?: boolean;
  dns_enabled?: boolean;
  options?: Record<string, string> | null;
  ipam_options?: Record<string, string> | null;
  [key: string]: unknown;
}

export interface NetavarkPortMapping {
  container_port: number;
  host_port: number;
  host_ip?: string | null;
  protocol: string;
  range?: number;
}

export interface NetavarkExec {
  container_id: string;
  container_name: string;
  port_mappings?: NetavarkPortMapping[] | null;
  network: NetavarkNetwork;
  network_options: {
    interface_name: string;
    static_ips?: string[] | null;
    static_mac?: string | null;
    aliases?: string[] | null;
  };
}

/** What setup answers: the container's interfaces with their MAC and addresses (podman inspect shows it). */
export interface StatusBlock {
  dns_search_domains: string[];
  dns_server_ips: string[];
  interfaces: Record<string, { mac_address: string; subnets: { ipnet: string; gateway?: string }[] }>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`the ${what} on stdin is not JSON`);
  }
  if (!isObject(value)) throw new UsageError(`the ${what} on stdin is not a JSON object`);
  return value;
}

/** podman's network ID: 64 hex digits; pipewright names the network's pool and record by its first 12. */
const NETWORK_ID = /^[0-9a-f]{64}$/;

export function parseNetwork(text: string): NetavarkNetwork {
  return checkNetwork(parseJson(text, 'network config'));
}

function checkNetwork(n: Record<string, unknown>): NetavarkNetwork {
  if (typeof n.name !== 'string' || !n.name) throw new UsageError('the network config has no "name"');
  if (typeof n.id !== 'string' || !NETWORK_ID.test(n.id))
    throw new UsageError(`network ${printable(n.name)}: "id" is not podman's 64-hex-digit network ID`);
  const options = n.options ?? {};
  if (!isObject(options) || !Object.values(options).every((v) => typeof v === 'string'))
    throw new UsageError(`network ${printable(n.name)}: "options" is not an object of strings`);
  const subnets = n.subnets ?? [];
  if (!Array.isArray(subnets) || !subnets.every((s) => isObject(s) && typeof s.subnet === 'string'))
    throw new UsageError(`network ${printable(n.name)}: "subnets" is not a list of {"subnet": ...}`);
  return n as NetavarkNetwork;
}

export function parseExec(text: string): NetavarkExec {
  const e = parseJson(text, 'setup/teardown input');
  if (typeof e.container_id !== 'string' || !/^[0-9a-zA-Z_.-]{1,128}$/.test(e.container_id))
    throw new UsageError('"container_id" is missing or not a container ID');
  if (!isObject(e.network)) throw new UsageError('"network" is missing');
  checkNetwork(e.network);
  const opts = e.network_options;
  if (!isObject(opts) || typeof opts.interface_name !== 'string')
    throw new UsageError('"network_options.interface_name" is missing');
  checkIfname(opts.interface_name, 'interface_name');
  if (e.port_mappings !== undefined && e.port_mappings !== null && !Array.isArray(e.port_mappings))
    throw new UsageError('"port_mappings" is not a list');
  for (const m of (e.port_mappings as unknown[] | null | undefined) ?? []) checkPortMapping(m);
  return e as unknown as NetavarkExec;
}

const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

/** One of podman's port mappings, checked before anything is made of it (a range stays within 65535). */
function checkPortMapping(m: unknown): void {
  const bad = (why: string) => new UsageError(`port mapping ${printable(JSON.stringify(m)).slice(0, 80)}: ${why}`);
  if (!isObject(m)) throw bad('not an object');
  if (!isPort(m.host_port) || !isPort(m.container_port)) throw bad('host_port and container_port must be 1-65535');
  const range = m.range ?? 1;
  if (!Number.isInteger(range) || (range as number) < 1) throw bad('range must be a whole number of ports');
  if (m.host_port + (range as number) - 1 > 65535 || m.container_port + (range as number) - 1 > 65535)
    throw bad('the range goes past port 65535');
  if (typeof m.protocol !== 'string' || !m.protocol.split(',').every((p) => ['tcp', 'udp'].includes(p)))
    throw bad('protocol must be tcp, udp or both');
}
