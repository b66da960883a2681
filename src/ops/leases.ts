/**
 * The addresses an attachment holds: static ones (leased from the pool whose subnet holds them, if
 * any, so nobody else gets them) and `pool:<name>` ones (the pool's next free address, with the
 * pool's gateway). Every lease is taken under the guest interface's owner name and given back on
 * rollback or detach; restore finds them again under that name.
 */
import type { Lease } from '../net/ipam/backend.js';
import type { Pool } from '../net/ipam/pool.js';
import type { IpConfig } from '../model/address.js';
import { poolsOf, staticAddresses, type AttachSpec } from '../model/attachment.js';
import { PipewrightError } from '../util/errors.js';
import type { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';

/** The lease owner of one guest interface: "<guest kind>:<guest id>/<ifname>". */
export function leaseOwner(guestKind: string, guestId: string, ifname: string): string {
  return `${guestKind}:${guestId}/${ifname}`;
}

/** A leased address as the guest gets it: the pool's prefix, and its gateway as the default route. */
export function asIpConfig(pool: Pool, lease: Lease): IpConfig {
  return {
    address: lease.address,
    prefix: pool.prefix,
    family: pool.family,
    ...(pool.gateway ? { gateway: pool.gateway } : {}),
  };
}

/**
 * The spec's addresses, leased under `owner`. Leases the owner already holds on this host are
 * taken as they are (a restore re-claims what it had; a pool address comes back unchanged); what
 * is missing is leased anew (a static address someone else took meanwhile is refused, naming its
 * holder). Only leases taken here are given back on rollback.
 */
export async function leaseAddresses(
  ctx: CoreContext,
  undo: UndoStack,
  owner: string,
  spec: AttachSpec,
): Promise<IpConfig[]> {
  const held = await ctx.ipam.heldBy(owner);
  const taken = (lease: Lease) => {
    if (!held.some((h) => h.pool === lease.pool && h.address === lease.address)) {
      // Given back only if still this attach's: a detach meanwhile may have let another take it.
      undo.push(`lease ${lease.address}`, () => ctx.ipam.release(lease.pool, lease.address, lease));
    }
    return lease;
  };
  const out: IpConfig[] = [];
  for (const a of staticAddresses(spec)) {
    const pool = await ctx.ipam.poolFor(a.address);
    if (pool) {
      if (pool.prefix !== a.prefix) {
        throw new PipewrightError(
          `${a.address}/${a.prefix} is in pool ${pool.name}, whose prefix is /${pool.prefix}; use ${a.address}/${pool.prefix}`,
        );
      }
      taken(
        await undo.step(`lease ${a.address} from pool ${pool.name}`, () => ctx.ipam.claim(pool.name, a.address, owner)),
      );
    }
    out.push(a);
  }
  for (const name of poolsOf(spec)) {
    const pool = await ctx.ipam.pool(name);
    // A held lease not already used above (a static address, or an earlier pool:<same pool>).
    const mine = held.find((l) => l.pool === name && !out.some((o) => o.address === l.address));
    const lease = mine ?? taken(await undo.step(`lease from pool ${name}`, () => ctx.ipam.allocate(name, owner)));
    out.push(asIpConfig(pool, lease));
  }
  return out;
}
