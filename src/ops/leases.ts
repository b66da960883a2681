/**
 * The addresses an attachment gets: static ones (leased from the pool whose subnet holds them, if
 * any, so nobody else gets them) and `pool:<name>` ones (the pool's next free address, with the
 * pool's gateway). Every lease is taken under the guest interface's owner name and given back on
 * rollback or detach.
 */
import { PipewrightError } from '../util/errors.js';
import type { IpConfig } from '../model/address.js';
import { ipamOf, type CoreContext } from './context.js';
import type { UndoStack } from '../util/undo.js';

export async function leaseAddresses(
  ctx: CoreContext, undo: UndoStack, owner: string, statics: IpConfig[], pools: string[],
): Promise<IpConfig[]> {
  const ipam = ipamOf(ctx);
  undo.push(`release leases of ${owner}`, async () => { await ipam.releaseOwner(owner); });
  const out: IpConfig[] = [];
  for (const a of statics) {
    const pool = await ipam.poolFor(a.address);
    if (pool) {
      if (pool.prefix !== a.prefix) {
        throw new PipewrightError(`${a.address}/${a.prefix} is in pool ${pool.name}, whose prefix is /${pool.prefix}; use ${a.address}/${pool.prefix}`);
      }
      await undo.step(`lease ${a.address} from pool ${pool.name}`, () => ipam.claim(pool.name, a.address, owner));
    }
    out.push(a);
  }
  for (const name of pools) {
    const lease = await undo.step(`lease from pool ${name}`, () => ipam.allocate(name, owner));
    const pool = await ipam.pool(name);
    out.push({ address: lease.address, prefix: pool.prefix, family: pool.family, ...(pool.gateway ? { gateway: pool.gateway } : {}) });
  }
  return out;
}
