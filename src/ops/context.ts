/**
 * What every operation is given: the host's store, the IPAM (over SQLite or etcd), the firewall
 * backend, the Docker engine's socket, and where to report steps. Front ends (CLI, library users)
 * build one from their flags and environment; nothing below reads options or the environment.
 */
import { existsSync, linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FirewallChoice } from './firewall-sync.js';
import type { Ipam } from '../net/ipam/allocator.js';
import type { EtcdAccess } from '../net/ipam/backend.js';
import { openIpam } from './open-ipam.js';
import { requirePowers } from '../net/netns/powers.js';
import { DEFAULT_DOCKER_SOCKET } from '../runtime/docker-socket.js';
import { Store } from '../db/store.js';
import { silent, type StepLog } from '../util/log.js';

export interface CoreContext {
  store: Store;
  ipam: Ipam;
  /** Which firewall backend; auto: nftables when nft is installed. */
  firewall: FirewallChoice;
  /** The Docker Engine API's unix socket (for docker: guests, gc, watch). */
  docker: string;
  log: StepLog;
}

export interface ContextOptions {
  /** Where the SQLite store lives (created 0700 if missing). */
  stateDir: string;
  /** `sqlite` (default) or `etcd://host:port[,host:port]` for pools and leases. */
  store?: string;
  /** TLS files and a user for an etcd store. */
  etcd?: EtcdAccess;
  firewall?: FirewallChoice;
  docker?: string;
  log?: StepLog;
}

/**
 * This host's id in the leases it takes, generated once and kept in the state directory: two
 * hosts (cloned VMs included) never share one. A state directory of an older version, whose
 * leases name the hostname, keeps the hostname.
 */
function hostId(stateDir: string, storeExisted: boolean): string {
  const file = join(stateDir, 'host-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  // The kernel's random UUID: no need to load node:crypto for 8 hex digits.
  const id = storeExisted
    ? hostname()
    : `${hostname()}-${readFileSync('/proc/sys/kernel/random/uuid', 'utf8').slice(0, 8)}`;
  // Written whole, then linked into place: a reader never sees a half-written file, and of two
  // first processes the second finds the first one's id.
  const draft = `${file}.${process.pid}`;
  writeFileSync(draft, `${id}\n`, { mode: 0o600 });
  try {
    linkSync(draft, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(draft, { force: true });
  }
  return readFileSync(file, 'utf8').trim();
}

/** The host's context; refused (one line, nothing touched) to a process without root's powers on the host. */
export async function openContext(opts: ContextOptions): Promise<CoreContext> {
  requirePowers();
  const storeExisted = existsSync(join(opts.stateDir, 'pipewright.db'));
  const store = Store.open(opts.stateDir);
  try {
    const ipam = await openIpam(store, opts.store, hostId(opts.stateDir, storeExisted), opts.etcd);
    return {
      store,
      ipam,
      firewall: opts.firewall ?? 'auto',
      docker: opts.docker ?? DEFAULT_DOCKER_SOCKET,
      log: opts.log ?? silent,
    };
  } catch (err) {
    store.close();
    throw err;
  }
}

export async function closeContext(ctx: CoreContext): Promise<void> {
  await ctx.ipam.close();
  ctx.store.close();
}
