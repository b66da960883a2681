/**
 * Docker's network driver (libnetwork's remote driver protocol): `docker network create -d
 * pipewright`. Docker calls it on every container start, before the container's command runs.
 *
 *   CreateNetwork / DeleteNetwork     a pipewright network "docker-<id12>" on bridge "pw-<id12>"
 *                                     (-o bridge=, masquerade=, isolated=, mtu=), or a macvlan
 *                                     network on a NIC (-o parent=, macvlan_mode=, host_shim=,
 *                                     mtu=); its pool is the one pipewright's IPAM driver made for
 *                                     the subnet, an operator's pool holding it, or one made for it
 *   CreateEndpoint / DeleteEndpoint   the host side of a veth pair, or a macvlan (ops/endpoint.ts);
 *                                     DeleteEndpoint answers once the endpoint's rules are gone and
 *                                     removes its link after (a network's removal waits for it)
 *   Join / Leave                      the container end's name for Docker to move, and the gateway
 *   Program/RevokeExternalConnectivity  -p, as pipewright's own published ports
 *   EndpointOperInfo                  the ports as published, in Docker's binding fields
 *
 * Docker names the network only by ID here; `pipewright network ls` shows it as docker-<id12>.
 */
import ipaddr from 'ipaddr.js';
import type { Pool } from '../net/ipam/pool.js';
import { addressOf, sameSubnet, type Family } from '../model/address.js';
import { familyOf, hostPart, parsePublish, type PortSpec } from '../model/publish.js';
import { staticAddresses } from '../model/attachment.js';
import { isControl, printable } from '../model/validate.js';
import type { CoreContext } from '../ops/context.js';
import {
  createEndpoint,
  DOCKER_KEY,
  findEndpoint,
  joinEndpoint,
  publishEndpoint,
  removeDockerNetwork,
  unpublishEndpoint,
  type EndpointRef,
} from '../ops/endpoint.js';
import { checkNetworkRequest, createNetwork } from '../ops/network.js';
import { freeHostPort } from '../ops/ports.js';
import { findNetwork, listPorts } from '../db/networks.js';
import { PipewrightError } from '../util/errors.js';
import { endpointRemovals } from './endpoint-removals.js';
import { networkOptions } from './network-options.js';
import { str, type Handler } from './server.js';

const PORTMAP = 'com.docker.network.portmap';
const EXPOSED = 'com.docker.network.exposedports';
/** IP protocol numbers, as Docker sends them. */
const PROTO = { tcp: 6, udp: 17 } as const;

type Body = Record<string, unknown>;

const short = (id: string) => id.slice(0, 12);
export const networkNameOf = (networkId: string) => `docker-${short(networkId)}`;

/** Docker's IDs are 64 hex digits; anything else is not from Docker. */
function dockerId(v: unknown, what: string): string {
  const id = str(v);
  if (!/^[0-9a-f]{64}$/.test(id)) throw new PipewrightError(`${what} must be Docker's 64-hex-digit ID`);
  return id;
}

const endpointOf = (body: Body): EndpointRef => ({
  networkId: dockerId(body.NetworkID, 'NetworkID'),
  endpointId: dockerId(body.EndpointID, 'EndpointID'),
});

interface IpamData {
  Pool?: string;
  Gateway?: string;
}

/**
 * The pool holding one of the network's subnets (the IPAM driver's, or an operator's), else one
 * made for this network; and its gateway. `family` names the pool made: docker-net(6)-<id12>.
 */
async function poolOf(ctx: CoreContext, networkId: string, data: IpamData & { Pool: string }, family: 4 | 6) {
  const gateway = data.Gateway ? addressOf(data.Gateway) : undefined;
  const found = gateway ? await ctx.ipam.poolFor(gateway) : null;
  const name = `docker-net${family === 6 ? '6' : ''}-${short(networkId)}`;
  const pool: Pool =
    found && sameSubnet(found.subnet, data.Pool)
      ? found
      : ((await ctx.ipam.findPool(name)) ??
        (await ctx.ipam.createPool({
          name,
          cidr: data.Pool,
          ...(gateway ? { gateway } : { noGateway: true }),
          labels: [`${DOCKER_KEY}=network`],
        })));
  if (pool.gateway && gateway && pool.gateway !== gateway) {
    throw new PipewrightError(
      `pool ${pool.name}'s gateway is ${pool.gateway}; create the network with --gateway ${pool.gateway}`,
    );
  }
  return { pool: pool.name, gateway };
}

async function onCreateNetwork(ctx: CoreContext, body: Body) {
  const id = dockerId(body.NetworkID, 'NetworkID');
  const v4 = (body.IPv4Data as IpamData[] | null)?.[0];
  const v6 = (body.IPv6Data as IpamData[] | null)?.[0];
  if (!v4?.Pool) throw new PipewrightError('Docker gave the network no IPv4 subnet');
  for (const [data, family] of [
    [v4, 4],
    [v6, 6],
  ] as const) {
    const kind = data?.Pool && ipaddr.isValidCIDR(data.Pool) ? ipaddr.parseCIDR(data.Pool)[0].kind() : null;
    if (data?.Pool && kind !== (family === 4 ? 'ipv4' : 'ipv6'))
      throw new PipewrightError(`Docker gave ${data.Pool} as the network's IPv${family} subnet`);
  }
  const options = networkOptions(body, `pw-${short(id)}`);
  checkNetworkRequest({ name: networkNameOf(id), ...options });
  const ipv4 = await poolOf(ctx, id, { ...v4, Pool: v4.Pool }, 4);
  const ipv6 = v6?.Pool ? await poolOf(ctx, id, { ...v6, Pool: v6.Pool }, 6) : null;
  await createNetwork(ctx, {
    name: networkNameOf(id),
    ...options,
    pool: ipv4.pool,
    ...(ipv4.gateway ? { gateway: ipv4.gateway } : {}),
    ...(ipv6 ? { pool6: ipv6.pool, ...(ipv6.gateway ? { gateway6: ipv6.gateway } : {}) } : {}),
  });
  return {};
}

/** Docker deletes a network only once it holds no endpoint on it: records of any left are leftovers. */
async function onDeleteNetwork(ctx: CoreContext, body: Body) {
  const id = dockerId(body.NetworkID, 'NetworkID');
  await removeDockerNetwork(ctx, networkNameOf(id), id);
  return {};
}

/**
 * Docker's own choice for a bridge endpoint: 02:42 and the IPv4 address, so an address keeps its
 * MAC across restarts.
 */
function macOf(address: string | undefined): string | null {
  const v4 =
    address && ipaddr.IPv4.isValidFourPartDecimal(addressOf(address)) ? ipaddr.IPv4.parse(addressOf(address)) : null;
  return v4 ? ['02', '42', ...v4.octets.map((o) => o.toString(16).padStart(2, '0'))].join(':') : null;
}

async function onCreateEndpoint(ctx: CoreContext, body: Body) {
  const ref = endpointOf(body);
  const iface = (body.Interface ?? {}) as { Address?: string; AddressIPv6?: string; MacAddress?: string };
  const addresses = [iface.Address, iface.AddressIPv6].filter((a): a is string => Boolean(a));
  const mac = iface.MacAddress || macOf(iface.Address);
  // The endpoint's own --driver-opt rate=, which Docker hands over among the endpoint's options.
  const rate = (body.Options as Body | undefined)?.rate;
  const rec = await createEndpoint(ctx, {
    ...ref,
    network: networkNameOf(ref.networkId),
    addresses,
    ...(mac ? { mac } : {}),
    ...(rate === undefined ? {} : { rate: str(rate) }),
  });
  // Docker refuses a driver's MAC when it chose one itself (--mac-address).
  return iface.MacAddress ? {} : { Interface: { MacAddress: rec.mac } };
}

async function onJoin(ctx: CoreContext, body: Body) {
  const ref = endpointOf(body);
  const rec = await joinEndpoint(ctx, ref, str(body.SandboxKey));
  const net = findNetwork(ctx.store, networkNameOf(ref.networkId));
  return {
    InterfaceName: { SrcName: rec.ifname, DstPrefix: 'eth' },
    ...(net?.gateway ? { Gateway: net.gateway } : {}),
    ...(net?.gateway6 ? { GatewayIPv6: net.gateway6 } : {}),
  };
}

interface PortBinding {
  Proto?: number;
  Port?: number;
  HostIP?: string | null;
  HostPort?: number;
  HostPortEnd?: number;
}

/**
 * Docker's binding as a published port; 0 or a range as the host port means "any free one" there.
 * Docker sends a plain -p as one binding or two (0.0.0.0 and ::); one for every address of a
 * family the endpoint has no address of maps nothing (as Docker's own bridge driver). What Docker
 * sends goes into root's firewall scripts, so it passes the checks of `-p` first (SECURITY.md:
 * nothing from Docker is trusted): an IP host address, ports 1-65535.
 */
function portOf(ctx: CoreContext, b: PortBinding, families: Set<Family>): PortSpec | null {
  const proto = b.Proto === PROTO.tcp ? 'tcp' : b.Proto === PROTO.udp ? 'udp' : null;
  if (!proto)
    throw new PipewrightError(`-p with IP protocol ${printable(String(b.Proto))}: pipewright publishes tcp and udp`);
  const hostIp = b.HostIP ? String(b.HostIP) : '';
  if ((hostIp === '0.0.0.0' || hostIp === '::') && !families.has(familyOf(hostIp))) return null;
  // One line whatever Docker sent: JSON escapes the binding, and the reason quotes it.
  const refused = (why: string) =>
    new PipewrightError(
      `Docker's port binding ${JSON.stringify(b)} is refused: ${[...why].map((c) => (isControl(c) ? printable(c) : c)).join('')}`,
    );
  const [from, to] = [Number(b.HostPort ?? 0), Number(b.HostPortEnd ?? 0)];
  if (![from, to].every((p) => Number.isInteger(p) && p >= 0 && p <= 65535))
    throw refused('host ports must be 0-65535');
  let spec: PortSpec;
  try {
    spec = parsePublish(`${hostPart(hostIp)}${from || 1}:${Number(b.Port)}/${proto}`);
  } catch (err) {
    throw refused((err as Error).message);
  }
  if (from > 0 && (to <= from || to === 0)) return spec;
  const hostPort = freeHostPort(ctx.store, proto, spec.hostIp, from || 49153, to || 60999);
  return { ...spec, hostPort, hostPortEnd: hostPort };
}

async function onProgramExternalConnectivity(ctx: CoreContext, body: Body) {
  const bindings = ((body.Options as Body | undefined)?.[PORTMAP] ?? []) as PortBinding[];
  const rec = findEndpoint(ctx, endpointOf(body));
  const families = new Set(rec ? staticAddresses(rec.spec).map((a) => a.family) : []);
  const ports = bindings.map((b) => portOf(ctx, b, families)).filter((p): p is PortSpec => p !== null);
  await publishEndpoint(ctx, endpointOf(body), ports);
  return {};
}

/**
 * The endpoint's ports as Docker's bindings (the protocol's operational data; Docker's CLI shows
 * none of a remote driver's).
 */
function onEndpointOperInfo(ctx: CoreContext, body: Body) {
  const rec = findEndpoint(ctx, endpointOf(body));
  const ports = rec ? listPorts(ctx.store, rec.id) : [];
  return {
    Value: {
      [PORTMAP]: ports.map((p) => ({
        Proto: PROTO[p.proto],
        IP: p.ctrIp,
        Port: p.ctrPort,
        HostIP: p.hostIp || (familyOf(p.ctrIp) === 6 ? '::' : '0.0.0.0'),
        HostPort: p.hostPort,
        HostPortEnd: p.hostPortEnd,
      })),
      [EXPOSED]: ports.map((p) => ({ Proto: PROTO[p.proto], Port: p.ctrPort })),
    },
  };
}

/** The driver's handlers, and a promise of the endpoint removals still under way (a daemon stopping waits for it). */
export interface NetworkDriver {
  handlers: Record<string, Handler>;
  settle(): Promise<void>;
}

export function networkDriver(ctx: CoreContext, report: (err: unknown) => void = () => {}): NetworkDriver {
  const removals = endpointRemovals(ctx, report);
  const handlers: Record<string, Handler> = {
    GetCapabilities: () => ({ Scope: 'local', ConnectivityScope: 'local' }),
    CreateNetwork: (body) => onCreateNetwork(ctx, body),
    DeleteNetwork: async (body) => {
      await removals.settle(); // the network's last endpoints may still be going
      return onDeleteNetwork(ctx, body);
    },
    CreateEndpoint: (body) => onCreateEndpoint(ctx, body),
    DeleteEndpoint: async (body) => {
      await removals.remove(endpointOf(body));
      return {};
    },
    EndpointOperInfo: (body) => onEndpointOperInfo(ctx, body),
    Join: (body) => onJoin(ctx, body),
    // Docker moves the container end back out and deletes the endpoint next; nothing to do before.
    Leave: () => ({}),
    ProgramExternalConnectivity: (body) => onProgramExternalConnectivity(ctx, body),
    RevokeExternalConnectivity: async (body) => {
      await unpublishEndpoint(ctx, endpointOf(body));
      return {};
    },
    DiscoverNew: () => ({}),
    DiscoverDelete: () => ({}),
  };
  return { handlers, settle: removals.settle };
}
