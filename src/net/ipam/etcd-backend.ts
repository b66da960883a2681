/**
 * The multi-host IPAM backend: pools and leases in etcd, every change one etcd transaction whose
 * compare step makes it a compare-and-swap, so two hosts allocating from one pool at the same
 * moment never get the same address.
 *
 *   /pipewright/ipam/pools/<pool>            pool definition (JSON)
 *   /pipewright/ipam/pools-rev               bumped with every pool change (overlap checks race on it)
 *   /pipewright/ipam/cursor/<pool>           offset of the next never-used address
 *   /pipewright/ipam/leases/<pool>/<ip>      lease (JSON)
 *   /pipewright/ipam/free/<pool>/<order>     released address; keys sort in release order
 */
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  type IOptions,
} from 'etcd3';
import { readFileSync } from 'node:fs';
import { PipewrightError } from '../../util/errors.js';
import type { AdvanceResult, EtcdAccess, FreeEntry, Lease, LeaseBackend } from './backend.js';
import { poolsOverlap, type Pool } from './pool.js';

const ROOT = '/pipewright/ipam/';
const K = {
  pool: (p: string) => `${ROOT}pools/${p}`,
  pools: `${ROOT}pools/`,
  poolsRev: `${ROOT}pools-rev`,
  cursor: (p: string) => `${ROOT}cursor/${p}`,
  lease: (p: string, ip: string) => `${ROOT}leases/${p}/${ip}`,
  leases: (p?: string) => `${ROOT}leases/${p ? `${p}/` : ''}`,
  free: (p: string) => `${ROOT}free/${p}/`,
};
const MAX_RETRIES = 1000;

/** Free-list keys sort in release order: zero-padded milliseconds, then a random tie-breaker. */
function freeKey(pool: string): string {
  return `${K.free(pool)}${String(Date.now()).padStart(15, '0')}-${Math.random().toString(36).slice(2, 10)}`;
}

/** etcd3's options for TLS files and a user; files that cannot be read are one clear error. */
function tlsAndAuth(access: EtcdAccess): Partial<IOptions> {
  const read = (what: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new PipewrightError(`cannot read the etcd ${what} ${path} (${(err as NodeJS.ErrnoException).code})`);
    }
  };
  const [ca, cert, key] = [read('CA', access.ca), read('certificate', access.cert), read('key', access.key)];
  return {
    // No CA file: the system's roots (gRPC's default) check etcd's certificate.
    ...(ca || cert ? { credentials: { rootCertificate: ca!, privateKey: key, certChain: cert } } : {}),
    ...(access.user ? { auth: { username: access.user, password: access.password! } } : {}),
  };
}

/**
 * How long one etcd call may take (the client retries a failed call a few times on its own); the
 * first call's includes connecting. Front ends take a longer one for slow hosts (an emulated VM, a
 * loaded farm: measured, a first call there took 4-7 s under 60 attaches at once).
 */
const CALL_DEADLINE_MS = 5000;

/**
 * gRPC's message, short: "14 UNAVAILABLE: No connection established. Last error: Error: connect
 * ECONNREFUSED h:p. Resolution note: " says "connect ECONNREFUSED h:p".
 */
export function grpcReason(message: string): string {
  const last = /Last error: (?:Error: )?([^]*?)\.?\s*(?:Resolution note:[^]*)?$/.exec(message);
  const text = last ? last[1] : message.replace(/^\d+ [A-Z_]+: /, '');
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * An etcd failure as what the operator reads: who refused whom, or which cluster did not answer
 * (every failure of the first call is one: nothing was read yet).
 */
function explained(err: unknown, endpoints: string[], access: EtcdAccess, firstCall: boolean): Error {
  if (err instanceof PipewrightError) return err;
  const at = endpoints.join(',');
  if (err instanceof EtcdAuthenticationFailedError)
    return new PipewrightError(`etcd at ${at} refused user ${access.user}: wrong user or password`);
  if (err instanceof EtcdPermissionDeniedError)
    return new PipewrightError(
      `etcd at ${at}: user ${access.user} may not read pipewright's keys; grant it a role on them`,
    );
  // etcd3 stops calling a member for 5 s after 3 failures in a row (its circuit breaker).
  const shunned = (err as { isBrokenCircuitError?: boolean }).isBrokenCircuitError === true;
  const reason = shunned
    ? 'its members failed the last calls, the next is tried 5 s after'
    : grpcReason((err as Error).message);
  const unanswered =
    shunned ||
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    /timed out|no leader/.test(reason);
  const hint = !unanswered
    ? ''
    : endpoints.length > 1
      ? '; a majority of its members must be up'
      : '; check that it runs';
  return new PipewrightError(
    firstCall || unanswered ? `cannot reach etcd at ${at}: ${reason}${hint}` : `etcd at ${at}: ${reason}`,
  );
}

/** `backend` whose every call fails with `explain`'s error instead of the one it met. */
function answeringInOneLine<T extends object>(backend: T, explain: (err: unknown) => Error): T {
  return new Proxy(backend, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        (value as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((err: unknown) => {
          throw explain(err);
        });
    },
  });
}

export class EtcdLeaseBackend implements LeaseBackend {
  readonly kind = 'etcd' as const;

  private constructor(private readonly client: Etcd3) {}

  static async connect(endpoints: string[], access: EtcdAccess = {}): Promise<EtcdLeaseBackend> {
    // Every call has a deadline: a stalled etcd fails an attach with an error instead of hanging it.
    const client = new Etcd3({
      hosts: endpoints,
      dialTimeout: 5000,
      defaultCallOptions: (c) =>
        c.isStream ? {} : { deadline: Date.now() + (access.callTimeoutMs ?? CALL_DEADLINE_MS) },
      ...tlsAndAuth(access),
    });
    try {
      await client.get(K.poolsRev).string();
    } catch (err) {
      client.close();
      throw explained(err, endpoints, access, true);
    }
    // A long-lived backend (the daemon's) meets etcd's failures later: each is one line too.
    return answeringInOneLine(new EtcdLeaseBackend(client), (err) => explained(err, endpoints, access, false));
  }

  async addPool(pool: Pool): Promise<void> {
    for (let i = 0; i < MAX_RETRIES; i++) {
      const rev = await this.client.get(K.poolsRev).string();
      for (const other of await this.listPools()) {
        if (other.name === pool.name) throw new PipewrightError(`pool ${pool.name} exists already`);
        if (poolsOverlap(other, pool))
          throw new PipewrightError(`pool ${pool.name} (${pool.subnet}) overlaps pool ${other.name} (${other.subnet})`);
      }
      const guard =
        rev === null ? this.client.if(K.poolsRev, 'Create', '==', 0) : this.client.if(K.poolsRev, 'Value', '==', rev);
      const res = await guard
        .and(K.pool(pool.name), 'Create', '==', 0)
        .then(
          this.client.put(K.pool(pool.name)).value(JSON.stringify(pool)),
          this.client.put(K.cursor(pool.name)).value('0'),
          this.client.put(K.poolsRev).value(String(Number(rev ?? 0) + 1)),
        )
        .commit();
      if (res.succeeded) return;
    }
    throw new PipewrightError('etcd: too much contention while adding a pool; retry');
  }

  async getPool(name: string): Promise<Pool | null> {
    const v = await this.client.get(K.pool(name)).string();
    return v ? (JSON.parse(v) as Pool) : null;
  }

  async listPools(): Promise<Pool[]> {
    const all = await this.client.getAll().prefix(K.pools).strings();
    return Object.values(all)
      .map((v) => JSON.parse(v) as Pool)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async removePool(name: string): Promise<void> {
    await this.client
      .if(K.pool(name), 'Create', '>', 0)
      .then(
        this.client.delete().key(K.pool(name)),
        this.client.delete().key(K.cursor(name)),
        this.client.delete().prefix(K.leases(name)),
        this.client.delete().prefix(K.free(name)),
      )
      .commit();
  }

  async cursor(pool: string): Promise<number> {
    const v = await this.client.get(K.cursor(pool)).string();
    if (v === null) throw new PipewrightError(`no pool named ${pool}`);
    return Number(v);
  }

  async advance(pool: string, at: number, lease: Lease | null): Promise<AdvanceResult> {
    const moveCursor = this.client.put(K.cursor(pool)).value(String(at + 1));
    let txn = this.client.if(K.cursor(pool), 'Value', '==', String(at));
    if (lease) txn = txn.and(K.lease(pool, lease.address), 'Create', '==', 0);
    const first = await txn
      .then(moveCursor, ...(lease ? [this.client.put(K.lease(pool, lease.address)).value(JSON.stringify(lease))] : []))
      .commit();
    if (first.succeeded) return 'ok';
    if (!lease) return 'raced';
    // Either the cursor moved (raced) or the address was leased by a claim: move past it then.
    const second = await this.client.if(K.cursor(pool), 'Value', '==', String(at)).then(moveCursor).commit();
    return second.succeeded ? 'taken' : 'raced';
  }

  async oldestFree(pool: string): Promise<FreeEntry | null> {
    const first = await this.client.getAll().prefix(K.free(pool)).sort('Key', 'Ascend').limit(1).strings();
    const [ref] = Object.keys(first);
    return ref ? { address: first[ref], ref } : null;
  }

  async takeFree(lease: Lease, entry: FreeEntry): Promise<boolean> {
    const res = await this.client
      .if(entry.ref, 'Create', '>', 0)
      .and(K.lease(lease.pool, lease.address), 'Create', '==', 0)
      .then(
        this.client.delete().key(entry.ref),
        this.client.put(K.lease(lease.pool, lease.address)).value(JSON.stringify(lease)),
      )
      .else(this.client.delete().key(entry.ref)) // gone, or a stale entry for an address claimed since
      .commit();
    return res.succeeded;
  }

  async createLease(lease: Lease): Promise<boolean> {
    const res = await this.client
      .if(K.lease(lease.pool, lease.address), 'Create', '==', 0)
      .and(K.pool(lease.pool), 'Create', '>', 0)
      .then(this.client.put(K.lease(lease.pool, lease.address)).value(JSON.stringify(lease)))
      .commit();
    return res.succeeded;
  }

  async deleteLease(pool: string, address: string, holds: (lease: Lease) => boolean): Promise<Lease | null> {
    for (let i = 0; i < MAX_RETRIES; i++) {
      const v = await this.client.get(K.lease(pool, address)).string();
      // The delete below compares the whole value: it ends this lease, never a later holder's.
      if (v === null || !holds(JSON.parse(v) as Lease)) return null;
      const res = await this.client
        .if(K.lease(pool, address), 'Value', '==', v)
        .then(this.client.delete().key(K.lease(pool, address)), this.client.put(freeKey(pool)).value(address))
        .commit();
      if (res.succeeded) return JSON.parse(v) as Lease;
    }
    throw new PipewrightError('etcd: too much contention while releasing a lease; retry');
  }

  async getLease(pool: string, address: string): Promise<Lease | null> {
    const v = await this.client.get(K.lease(pool, address)).string();
    return v ? (JSON.parse(v) as Lease) : null;
  }

  async leases(filter: { pool?: string; owner?: string } = {}): Promise<Lease[]> {
    const all = await this.client.getAll().prefix(K.leases(filter.pool)).strings();
    return Object.values(all)
      .map((v) => JSON.parse(v) as Lease)
      .filter((l) => !filter.owner || l.owner === filter.owner)
      .sort((a, b) => a.pool.localeCompare(b.pool) || a.createdAt.localeCompare(b.createdAt));
  }

  async leasedAddresses(pool: string): Promise<string[]> {
    const keys = await this.client.getAll().prefix(K.leases(pool)).keys();
    return keys.map((k) => k.slice(K.leases(pool).length));
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
