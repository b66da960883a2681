/**
 * What every core operation is given: the host's store, where to report steps, and the IPAM
 * (the host's SQLite store unless the caller chose etcd). Front ends build one; the core never
 * reads options or the environment itself.
 */
import type { StepLog } from '../util/log.js';
import type { Store } from '../store/store.js';
import { Ipam } from '../ipam/allocator.js';
import { SqliteLeaseBackend } from '../ipam/sqlite-backend.js';
import type { FirewallChoice } from '../firewall/sync.js';

export interface CoreContext {
  store: Store;
  log?: StepLog;
  ipam?: Ipam;
  /** Which firewall backend; default auto (nftables when nft works). */
  firewall?: FirewallChoice;
}

export function ipamOf(ctx: CoreContext): Ipam {
  ctx.ipam ??= new Ipam(new SqliteLeaseBackend(ctx.store));
  return ctx.ipam;
}

/** The lease owner of one guest interface: "<guest kind>:<guest id>/<ifname>". */
export function leaseOwner(guestKind: string, guestId: string, ifname: string): string {
  return `${guestKind}:${guestId}/${ifname}`;
}
