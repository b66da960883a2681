/**
 * The allocator: hands out addresses from pools over any LeaseBackend.
 *
 * Never-used addresses come first, in order, from a per-pool cursor (no scan of the leases: one
 * step per address whatever the pool's size); once the range has been walked, released addresses
 * come back oldest release first, so an address a crash-looping guest just gave up is the last to
 * be handed out again (peers may still cache its old MAC). That is the `fresh` policy, the CLI's
 * and CNI's. The `lowest` policy hands out the lowest free address of the range, as Docker's own
 * IPAM does: a container restarted by Docker (its address released, then asked for again) gets
 * its address back while no one else took it.
 */
import { hostname } from 'node:os';
import { PipewrightError } from '../../util/errors.js';
import type { Lease, LeaseBackend } from './backend.js';
import { fromBig, toBig } from '../../model/ipmath.js';
import {
  addressAt,
  definePool,
  inRange,
  inSubnetOf,
  isNetworkOrBroadcast,
  isWithheld,
  rangeSize,
  type Pool,
  type PoolInput,
} from './pool.js';

/**
 * Whose lease a release may end. A caller acts on a view taken earlier (a rollback, gc's list,
 * Docker's ReleaseAddress), and the address may have changed hands since: it names the holder it
 * means, and another holder's lease stays. `owner` may be a pattern (Docker names only pool and
 * address). 'anyone' is for an operator releasing an address by hand.
 */
export type Holder = { owner: string | RegExp; host: string } | 'anyone';

function holds(holder: Holder): (lease: Lease) => boolean {
  if (holder === 'anyone') return () => true;
  const { owner, host } = holder;
  return (l) => l.host === host && (typeof owner === 'string' ? l.owner === owner : owner.test(l.owner));
}

/** How `allocate` picks an address: see the top of this file. */
export type AllocationPolicy = 'fresh' | 'lowest';

/** Tries of a `lowest` allocation that others keep winning before it gives up. */
const LOWEST_TRIES = 1000;

const exhausted = (pool: Pool) =>
  new PipewrightError(
    `pool ${pool.name} (${pool.subnet}) is exhausted: every address is leased; release some or create another pool`,
  );

/** The lowest address of the range that is neither leased nor withheld, or null. */
function lowestFree(pool: Pool, leased: Set<bigint>): string | null {
  for (let n = toBig(pool.rangeStart), end = toBig(pool.rangeEnd); n <= end; n++) {
    if (leased.has(n)) continue;
    const address = fromBig(n, pool.family);
    if (!isWithheld(pool, address)) return address;
  }
  return null;
}

export class Ipam {
  /** The backend is this class's own: callers go through the allocator, never around it. */
  constructor(
    private readonly backend: LeaseBackend,
    readonly host: string = hostname(),
  ) {}

  /** Checks the definition, then adds the pool unless it overlaps another. */
  async createPool(input: PoolInput): Promise<Pool> {
    const pool = definePool(input);
    await this.backend.addPool(pool);
    return pool;
  }

  /** The pool, or an error naming it. */
  async pool(name: string): Promise<Pool> {
    const pool = await this.backend.getPool(name);
    if (!pool) throw new PipewrightError(`no pool named ${name} (see 'pipewright pool ls')`);
    return pool;
  }

  /** The pool, or null. */
  findPool(name: string): Promise<Pool | null> {
    return this.backend.getPool(name);
  }

  listPools(): Promise<Pool[]> {
    return this.backend.listPools();
  }

  leases(filter: { pool?: string; owner?: string } = {}): Promise<Lease[]> {
    return this.backend.leases(filter);
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  /** The pool whose subnet holds this address, if any (static addresses are leased from it). */
  async poolFor(ip: string): Promise<Pool | null> {
    return (await this.backend.listPools()).find((p) => inSubnetOf(p, ip)) ?? null;
  }

  async removePool(name: string, force = false): Promise<void> {
    await this.pool(name);
    const held = await this.backend.leases({ pool: name });
    if (held.length && !force) {
      throw new PipewrightError(
        `pool ${name} still has ${held.length} lease(s) (e.g. ${held[0].address} by ${held[0].owner}); release them or use --force`,
      );
    }
    await this.backend.removePool(name);
  }

  private lease(pool: Pool, address: string, owner: string, reserved = false): Lease {
    return { pool: pool.name, address, owner, host: this.host, reserved, createdAt: new Date().toISOString() };
  }

  /** A free address of the pool, picked by `policy` (`reserved`: pinned for an outside user, gc leaves it). */
  async allocate(
    poolName: string,
    owner: string,
    reserved = false,
    policy: AllocationPolicy = 'fresh',
  ): Promise<Lease> {
    const pool = await this.pool(poolName);
    if (policy === 'lowest') return this.allocateLowest(pool, owner, reserved);
    const size = rangeSize(pool);
    for (let at = await this.backend.cursor(pool.name); BigInt(at) < size;) {
      const address = addressAt(pool, at);
      const lease = isWithheld(pool, address) ? null : this.lease(pool, address, owner, reserved);
      const res = await this.backend.advance(pool.name, at, lease);
      if (res === 'ok' && lease) return lease;
      at = res === 'raced' ? await this.backend.cursor(pool.name) : at + 1;
    }
    for (
      let entry = await this.backend.oldestFree(pool.name);
      entry;
      entry = await this.backend.oldestFree(pool.name)
    ) {
      const lease = this.lease(pool, entry.address, owner, reserved);
      if (await this.backend.takeFree(lease, entry)) return lease;
    }
    throw exhausted(pool);
  }

  /** One scan of the pool's leases per try; a lease taken meanwhile makes the creation fail, and the scan is redone. */
  private async allocateLowest(pool: Pool, owner: string, reserved: boolean): Promise<Lease> {
    for (let i = 0; i < LOWEST_TRIES; i++) {
      const leased = new Set((await this.backend.leasedAddresses(pool.name)).map(toBig));
      const address = lowestFree(pool, leased);
      if (!address) throw exhausted(pool);
      const lease = this.lease(pool, address, owner, reserved);
      if (await this.backend.createLease(lease)) return lease;
    }
    throw new PipewrightError(`pool ${pool.name}: too much contention for its lowest free address; retry`);
  }

  /** A given address; a taken one is refused naming its holder (the same owner again is fine). */
  async claim(poolName: string, address: string, owner: string, reserved = false): Promise<Lease> {
    const pool = await this.pool(poolName);
    if (!inSubnetOf(pool, address))
      throw new PipewrightError(`${address} is not in pool ${pool.name} (${pool.subnet})`);
    if (address === pool.gateway) throw new PipewrightError(`${address} is the gateway of pool ${pool.name}`);
    if (isNetworkOrBroadcast(pool, address))
      throw new PipewrightError(`${address} is the network or broadcast address of pool ${pool.name} (${pool.subnet})`);
    if (inRange(pool, address) && isWithheld(pool, address))
      throw new PipewrightError(`${address} is excluded from pool ${pool.name}`);
    const lease = this.lease(pool, address, owner, reserved);
    if (await this.backend.createLease(lease)) return lease;
    const holder = await this.backend.getLease(pool.name, address);
    if (holder && holder.owner === owner && holder.host === this.host) return holder;
    throw new PipewrightError(
      `${address} in pool ${pool.name} is taken by ${holder?.owner ?? 'another owner'} on ${holder?.host ?? 'another host'}`,
    );
  }

  /** Ends the lease if `holder` still holds it; the lease ended, or null. */
  async release(poolName: string, address: string, holder: Holder): Promise<Lease | null> {
    return this.backend.deleteLease(poolName, address, holds(holder));
  }

  /** This host's leases of an owner: owner names are per host (netns:blue/eth0 exists on every host). */
  async heldBy(owner: string): Promise<Lease[]> {
    return (await this.backend.leases({ owner })).filter((l) => l.host === this.host);
  }

  async releaseOwner(owner: string): Promise<Lease[]> {
    const held = await this.heldBy(owner);
    const mine = holds({ owner, host: this.host });
    const gone: Lease[] = [];
    for (const l of held) {
      const lease = await this.backend.deleteLease(l.pool, l.address, mine);
      if (lease) gone.push(lease);
    }
    return gone;
  }
}
