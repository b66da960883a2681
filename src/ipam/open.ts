/**
 * Picks the IPAM backend: the host's SQLite store by default, or an etcd cluster shared by many
 * hosts (`--store etcd://host:port[,host:port]` or PIPEWRIGHT_STORE). With etcd, pools and leases
 * live in etcd; attachments stay in the host's own store.
 */
import { UsageError } from '../util/errors.js';
import type { Store } from '../store/store.js';
import { Ipam } from './allocator.js';
import { SqliteLeaseBackend } from './sqlite-backend.js';

export function storeSpecFrom(option?: string): string | undefined {
  return option ?? process.env.PIPEWRIGHT_STORE ?? undefined;
}

/** Parses `etcd://h:p[,h:p]` into endpoints; anything else but `sqlite` is a usage error. */
export function parseStoreSpec(spec: string | undefined): { kind: 'sqlite' } | { kind: 'etcd'; endpoints: string[] } {
  if (!spec || spec === 'sqlite') return { kind: 'sqlite' };
  const m = /^etcd:\/\/(.+)$/.exec(spec);
  if (!m) throw new UsageError(`store "${spec}" must be sqlite or etcd://host:port[,host:port]`);
  const endpoints = m[1].split(',').map((hp) => {
    if (!/^[a-zA-Z0-9.\-[\]:]+:\d+$/.test(hp)) throw new UsageError(`etcd endpoint "${hp}" must be host:port`);
    return `http://${hp}`;
  });
  return { kind: 'etcd', endpoints };
}

export async function openIpam(store: Store, spec?: string): Promise<Ipam> {
  const parsed = parseStoreSpec(spec);
  if (parsed.kind === 'sqlite') return new Ipam(new SqliteLeaseBackend(store));
  const { EtcdLeaseBackend } = await import('./etcd-backend.js');
  return new Ipam(await EtcdLeaseBackend.connect(parsed.endpoints));
}
