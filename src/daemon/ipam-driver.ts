/**
 * Docker's IPAM driver (libnetwork's remote IPAM protocol) over pipewright's pools and leases, so
 * `docker network create --ipam-driver pipewright` networks take their addresses from the same
 * store as the CLI (and, with the etcd store, from pools shared by many hosts).
 *
 *   RequestPool     --subnet [--ip-range] makes a pool labelled for Docker (reused when asked
 *                   again); --ipam-opt pool=<name> uses an operator's pool as it is (one the
 *                   host routes, as a macvlan network's LAN, with --subnet)
 *   RequestAddress  a given address is that address or an error; the gateway request is the
 *                   pool's gateway or a lease; endpoint leases are owned by the endpoint's MAC;
 *                   otherwise the pool's lowest free address (Docker's way: restarts keep theirs)
 *   ReleaseAddress, ReleasePool (a pool made for Docker goes once nothing is leased from it)
 *
 * Leases are reservations (gc never releases them): Docker, not a pipewright record, owns them.
 */
import ipaddr from 'ipaddr.js';
import type { Ipam } from '../net/ipam/allocator.js';
import { fromBig, prefixBounds } from '../model/ipmath.js';
import { sameSubnet } from '../model/address.js';
import type { Pool } from '../net/ipam/pool.js';
import { hostRouteOverlapping } from '../net/routes/host-routes.js';
import { DOCKER_KEY } from '../ops/endpoint.js';
import { PipewrightError } from '../util/errors.js';
import { str, type Handler } from './server.js';

const DOCKER_VALUE = 'ipam';
const GATEWAY = 'com.docker.network.gateway';
const MAC = 'com.docker.network.endpoint.macaddress';
/** The owners of the leases this driver gives out (RequestAddress): an endpoint's, a network's gateway. */
const DOCKER_OWNERS = /^docker(-gateway)?:/;

type Options = Record<string, string> | undefined;

/**
 * `10.1.0.0/24` (and an --ip-range) -> `docker-10.1.0.0-24[_…]`: slashes become dashes, an IPv6
 * subnet's colons dots.
 */
function poolNameFor(subnet: string, range: string): string {
  const text = range ? `${subnet}_${range}` : subnet;
  return `docker-${text.replaceAll('/', '-').replaceAll(':', '.')}`;
}

/**
 * The hosts of CIDR `sub` inside `subnet`, as "a-b" (an --ip-range; the subnet's own network and
 * broadcast left out).
 */
function rangeOf(sub: string, subnet: string): string {
  const bounds = (cidr: string) => {
    const [addr, prefix] = ipaddr.parseCIDR(cidr);
    const family = addr.kind() === 'ipv4' ? 4 : 6;
    return { range: prefixBounds(addr.toString(), prefix, family), family } as const;
  };
  const [inner, outer] = [bounds(sub), bounds(subnet)];
  const first = inner.range[0] === outer.range[0] ? inner.range[0] + 1n : inner.range[0];
  const last = inner.range[1] === outer.range[1] ? inner.range[1] - 1n : inner.range[1];
  return `${fromBig(first, inner.family)}-${fromBig(last, inner.family)}`;
}

/**
 * Docker checks a pool it did not name (no --subnet) against the host's IPv4 routes, and asks
 * again while one overlaps: a pool on the host's LAN (a macvlan network's) would hang `docker
 * network create`. Named with --subnet, Docker takes it as it is.
 */
async function refuseRouted(pool: Pool): Promise<void> {
  const route = await hostRouteOverlapping(pool.subnet);
  if (route) {
    throw new PipewrightError(
      `pool ${pool.name} (${pool.subnet}) is on this host's route to ${route.dst} (${route.dev}), which Docker refuses for a network without --subnet: add --subnet ${pool.subnet}`,
    );
  }
}

async function requestPool(ipam: Ipam, body: Record<string, unknown>) {
  const [subnet, subPool, options] = [str(body.Pool), str(body.SubPool), body.Options as Options];
  if (options?.pool) {
    const pool = await ipam.pool(options.pool);
    if (subnet && !sameSubnet(subnet, pool.subnet)) {
      throw new PipewrightError(`pool ${pool.name} is ${pool.subnet}, not ${subnet}`);
    }
    if (!subnet && body.V6 !== true) await refuseRouted(pool);
    return { PoolID: pool.name, Pool: pool.subnet, Data: {} };
  }
  if (!subnet)
    throw new PipewrightError(
      'give the network a --subnet, or an existing pipewright pool with --ipam-opt pool=<name>',
    );
  const name = poolNameFor(subnet, subPool);
  const pool: Pool =
    (await ipam.findPool(name)) ??
    (await ipam.createPool({
      name,
      cidr: subnet,
      noGateway: true,
      labels: [`${DOCKER_KEY}=${DOCKER_VALUE}`],
      ...(subPool ? { range: rangeOf(subPool, subnet) } : {}),
    }));
  return { PoolID: pool.name, Pool: pool.subnet, Data: {} };
}

async function requestAddress(ipam: Ipam, body: Record<string, unknown>) {
  const [poolName, address, options] = [
    str(body.PoolID),
    str(body.Address),
    (body.Options ?? {}) as Record<string, string>,
  ];
  const pool = await ipam.pool(poolName);
  const cidr = (ip: string) => ({ Address: `${ip}/${pool.prefix}`, Data: {} });
  const gateway = options.RequestAddressType === GATEWAY;
  // An operator's pool has its gateway already (withheld from leases): that is the network's.
  if (gateway && pool.gateway && (!address || address === pool.gateway)) return cidr(pool.gateway);
  const owner = gateway ? `docker-gateway:${pool.name}` : `docker:${options[MAC] || 'endpoint'}`;
  if (address) return cidr((await ipam.claim(pool.name, address, owner, true)).address);
  // Docker replays a request after its own restart: the endpoint's MAC finds the address it got.
  const held = options[MAC] ? (await ipam.heldBy(owner)).find((l) => l.pool === pool.name) : undefined;
  // The lowest free address, as Docker's own IPAM: `docker restart` releases the address and asks
  // again (with a new MAC), and gets it back unless another container took it meanwhile.
  return cidr((held ?? (await ipam.allocate(pool.name, owner, true, 'lowest'))).address);
}

async function releasePool(ipam: Ipam, body: Record<string, unknown>) {
  const pool = await ipam.findPool(str(body.PoolID));
  // Gone already (a replay), an operator's pool, or still used by another network: nothing to do.
  if (!pool || pool.labels[DOCKER_KEY] !== DOCKER_VALUE) return {};
  if ((await ipam.leases({ pool: pool.name })).length === 0) await ipam.removePool(pool.name);
  return {};
}

export function ipamDriver(ipam: Ipam): Record<string, Handler> {
  return {
    GetCapabilities: () => ({ RequiresMACAddress: true }),
    GetDefaultAddressSpaces: () => ({
      LocalDefaultAddressSpace: 'pipewright',
      GlobalDefaultAddressSpace: 'pipewright',
    }),
    RequestPool: (body) => requestPool(ipam, body),
    ReleasePool: (body) => releasePool(ipam, body),
    RequestAddress: (body) => requestAddress(ipam, body),
    // Docker names only pool and address: a lease this driver gave out on this host, never a
    // CLI guest's or another host's that holds the address after a late or replayed release.
    ReleaseAddress: async (body) => {
      await ipam.release(str(body.PoolID), str(body.Address), { owner: DOCKER_OWNERS, host: ipam.host });
      return {};
    },
  };
}
