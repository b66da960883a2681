/** The embedded IPAM backend: tables in the host's SQLite store, one IMMEDIATE transaction per call. */
import { PipewrightError } from '../util/errors.js';
import type { Statement } from 'better-sqlite3';
import type { Store } from './store.js';
import type { AdvanceResult, FreeEntry, Lease, LeaseBackend } from '../net/ipam/backend.js';
import { poolsOverlap, type Pool } from '../net/ipam/pool.js';

interface LeaseRow {
  pool: string;
  address: string;
  owner: string;
  host: string;
  reserved: number;
  created_at: string;
}

const toLease = (r: LeaseRow): Lease => ({
  pool: r.pool,
  address: r.address,
  owner: r.owner,
  host: r.host,
  reserved: r.reserved === 1,
  createdAt: r.created_at,
});

export class SqliteLeaseBackend implements LeaseBackend {
  readonly kind = 'sqlite' as const;

  constructor(private readonly store: Store) {}

  /** The store keeps its prepared statements (preparing costs more than running these small ones). */
  private sql(text: string): Statement {
    return this.store.stmt(text);
  }

  async addPool(pool: Pool): Promise<void> {
    this.store.tx(() => {
      const others = this.sql('SELECT def FROM pools').all() as { def: string }[];
      for (const o of others.map((r) => JSON.parse(r.def) as Pool)) {
        if (o.name === pool.name) throw new PipewrightError(`pool ${pool.name} exists already`);
        if (poolsOverlap(o, pool))
          throw new PipewrightError(`pool ${pool.name} (${pool.subnet}) overlaps pool ${o.name} (${o.subnet})`);
      }
      this.sql('INSERT INTO pools (name, def) VALUES (?, ?)').run(pool.name, JSON.stringify(pool));
    });
  }

  async getPool(name: string): Promise<Pool | null> {
    const row = this.sql('SELECT def FROM pools WHERE name = ?').get(name) as { def: string } | undefined;
    return row ? (JSON.parse(row.def) as Pool) : null;
  }

  async listPools(): Promise<Pool[]> {
    return (this.sql('SELECT def FROM pools ORDER BY name').all() as { def: string }[]).map(
      (r) => JSON.parse(r.def) as Pool,
    );
  }

  async removePool(name: string): Promise<void> {
    this.store.tx(() => this.sql('DELETE FROM pools WHERE name = ?').run(name));
  }

  async cursor(pool: string): Promise<number> {
    const row = this.sql('SELECT cursor FROM pools WHERE name = ?').get(pool) as { cursor: number } | undefined;
    if (!row) throw new PipewrightError(`no pool named ${pool}`);
    return row.cursor;
  }

  async advance(pool: string, at: number, lease: Lease | null): Promise<AdvanceResult> {
    return this.store.tx(() => {
      const moved = this.sql('UPDATE pools SET cursor = cursor + 1 WHERE name = ? AND cursor = ?').run(pool, at);
      if (moved.changes === 0) return 'raced';
      if (!lease) return 'ok';
      return this.insertLease(lease) ? 'ok' : 'taken';
    });
  }

  async oldestFree(pool: string): Promise<FreeEntry | null> {
    const row = this.sql('SELECT seq, address FROM free_addresses WHERE pool = ? ORDER BY seq LIMIT 1').get(pool) as
      { seq: number; address: string } | undefined;
    return row ? { address: row.address, ref: String(row.seq) } : null;
  }

  async takeFree(lease: Lease, entry: FreeEntry): Promise<boolean> {
    return this.store.tx(() => {
      const gone = this.sql('DELETE FROM free_addresses WHERE seq = ?').run(Number(entry.ref));
      return gone.changes === 1 && this.insertLease(lease);
    });
  }

  async createLease(lease: Lease): Promise<boolean> {
    return this.store.tx(() => this.insertLease(lease));
  }

  /** Inserts unless leased; a leased address is never also on the free list. */
  private insertLease(l: Lease): boolean {
    const res = this.sql(
      'INSERT OR IGNORE INTO leases (pool, address, owner, host, reserved, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(l.pool, l.address, l.owner, l.host, l.reserved ? 1 : 0, l.createdAt);
    if (res.changes !== 1) return false;
    this.sql('DELETE FROM free_addresses WHERE pool = ? AND address = ?').run(l.pool, l.address);
    return true;
  }

  async deleteLease(pool: string, address: string, holds: (lease: Lease) => boolean): Promise<Lease | null> {
    return this.store.tx(() => {
      const row = this.sql('SELECT * FROM leases WHERE pool = ? AND address = ?').get(pool, address) as
        LeaseRow | undefined;
      if (!row || !holds(toLease(row))) return null;
      this.sql('DELETE FROM leases WHERE pool = ? AND address = ?').run(pool, address);
      this.sql('INSERT OR IGNORE INTO free_addresses (pool, address) VALUES (?, ?)').run(pool, address);
      return toLease(row);
    });
  }

  async getLease(pool: string, address: string): Promise<Lease | null> {
    const row = this.sql('SELECT * FROM leases WHERE pool = ? AND address = ?').get(pool, address) as
      LeaseRow | undefined;
    return row ? toLease(row) : null;
  }

  async leases(filter: { pool?: string; owner?: string } = {}): Promise<Lease[]> {
    const rows = this.sql(
      'SELECT * FROM leases WHERE (@pool IS NULL OR pool = @pool) AND (@owner IS NULL OR owner = @owner) ORDER BY pool, created_at, address',
    ).all({ pool: filter.pool ?? null, owner: filter.owner ?? null }) as LeaseRow[];
    return rows.map(toLease);
  }

  async leasedAddresses(pool: string): Promise<string[]> {
    return (this.sql('SELECT address FROM leases WHERE pool = ?').all(pool) as { address: string }[]).map(
      (r) => r.address,
    );
  }

  async close(): Promise<void> {
    // The store belongs to the caller.
  }
}
