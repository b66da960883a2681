/**
 * What an IPAM backend must do, and nothing more: keep pools, a per-pool cursor over never-used
 * addresses, the leases, and released addresses in release order. Every method is atomic on its
 * own (one SQLite transaction, one etcd transaction); the allocator composes them.
 */
import type { Pool } from './pool.js';

export interface Lease {
  pool: string;
  address: string;
  /** Who holds it: "<guest kind>:<guest id>/<ifname>" for attachments, free text for reservations. */
  owner: string;
  host: string;
  /** Pinned by `lease reserve` for something outside pipewright: gc never touches it. */
  reserved: boolean;
  createdAt: string;
}

export type AdvanceResult = 'ok' | 'taken' | 'raced';

export interface FreeEntry {
  address: string;
  ref: string;
}

export interface LeaseBackend {
  readonly kind: 'sqlite' | 'etcd';
  /** Adds the pool unless it overlaps one already there (checked in the same transaction). */
  addPool(pool: Pool): Promise<void>;
  getPool(name: string): Promise<Pool | null>;
  listPools(): Promise<Pool[]>;
  /** Removes the pool with its cursor, free list and any leases left. */
  removePool(name: string): Promise<void>;
  /** The offset (within the pool's range) of the next never-used address. */
  cursor(pool: string): Promise<number>;
  /**
   * If the cursor is still `at`, moves it to at+1 and, when a lease is given, creates it unless
   * its address is already leased ('taken'; the cursor still moves). 'raced': someone moved it first.
   */
  advance(pool: string, at: number, lease: Lease | null): Promise<AdvanceResult>;
  /** The address released longest ago, with the backend's handle on that free-list entry, or null. */
  oldestFree(pool: string): Promise<FreeEntry | null>;
  /** Takes that released address for the lease; false if someone else took it first (the entry is gone then). */
  takeFree(lease: Lease, entry: FreeEntry): Promise<boolean>;
  /** A lease on a given address; false if the address is leased already. */
  createLease(lease: Lease): Promise<boolean>;
  /**
   * Ends the lease if `holds(lease)` says it is the one the caller means, in the same transaction
   * (compare-and-delete: the address may have changed hands since the caller looked); its address
   * joins the free list (at the end: handed out again last). The lease ended, or null.
   */
  deleteLease(pool: string, address: string, holds: (lease: Lease) => boolean): Promise<Lease | null>;
  getLease(pool: string, address: string): Promise<Lease | null>;
  leases(filter?: { pool?: string; owner?: string }): Promise<Lease[]>;
  /** The addresses leased in a pool, in no order (the `lowest` policy's scan: addresses only, cheap). */
  leasedAddresses(pool: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * How pipewright reaches a production etcd: TLS files (the CA that signed etcd's certificate; a
 * client certificate and key when etcd asks for one) and a user whose password comes from the
 * environment or a file (never the command line, which any user can read in ps).
 */
export interface EtcdAccess {
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  /** How long one etcd call may take, in ms (default 5000); the first call's includes connecting. */
  callTimeoutMs?: number;
}
