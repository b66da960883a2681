/**
 * Picks the IPAM backend: the host's SQLite store by default, or an etcd cluster shared by many
 * hosts (`etcd://host:port[,host:port]`). With etcd, pools and leases live in etcd; attachments
 * stay in the host's own store. Front ends read the option or environment and pass the text.
 */
import { UsageError } from '../util/errors.js';
import type { Store } from '../store/store.js';
import { Ipam } from './allocator.js';
import { SqliteLeaseBackend } from './sqlite-backend.js';

export type StoreSpec = { kind: 'sqlite' } | { kind: 'etcd'; endpoints: string[] };

/** Parses `sqlite` or `etcd://h:p[,h:p]` into endpoints; anything else is a usage error. */
export function parseStoreSpec(spec: string | undefined): StoreSpec {
  if (!spec || spec === 'sqlite') return { kind: 'sqlite' };
  const m = /^etcd:\/\/(.+)$/.exec(spec);
  if (!m) throw new UsageError(`store "${spec}" must be sqlite or etcd://host:port[,host:port]`);
  const endpoints = m[1].split(',').map((hp) => {
    if (!/^[a-zA-Z0-9.\-[\]:]+:\d+$/.test(hp)) throw new UsageError(`etcd endpoint "${hp}" must be host:port`);
    return `http://${hp}`;
  });
  return { kind: 'etcd', endpoints };
}

/** `host`: this host's id in every lease it takes (ops/context.ts keeps it in the state directory). */
export async function openIpam(store: Store, spec: string | undefined, host: string): Promise<Ipam> {
  const parsed = parseStoreSpec(spec);
  if (parsed.kind === 'sqlite') return new Ipam(new SqliteLeaseBackend(store), host);
  const { EtcdLeaseBackend } = await import('./etcd-backend.js');
  return new Ipam(await EtcdLeaseBackend.connect(parsed.endpoints), host);
}
