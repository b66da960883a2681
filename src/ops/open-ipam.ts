/**
 * Picks the IPAM backend: the host's SQLite store by default, or an etcd cluster shared by many
 * hosts (`etcd://host:port[,host:port]`, with TLS and a user for a production cluster). With etcd,
 * pools and leases live in etcd; attachments stay in the host's own store. Front ends read the
 * option or environment and pass the text.
 */
import ipaddr from 'ipaddr.js';
import { UsageError } from '../util/errors.js';
import type { Store } from '../db/store.js';
import { Ipam } from '../net/ipam/allocator.js';
import { SqliteLeaseBackend } from '../db/ipam-backend.js';
import type { EtcdAccess } from '../net/ipam/backend.js';

export type StoreSpec = { kind: 'sqlite' } | { kind: 'etcd'; endpoints: string[]; access: EtcdAccess };

const SCHEMES: Record<string, 'http' | 'https' | 'auto'> = { etcd: 'auto', 'etcd+https': 'https', 'etcd+http': 'http' };

/**
 * Parses `sqlite` or `<scheme>://h:p[,h:p]`: `etcd+https` (TLS), `etcd+http` (plain, asked for by
 * name), or `etcd`: TLS when TLS files are given, else plain http, which only loopback may get.
 */
export function parseStoreSpec(spec: string | undefined, access: EtcdAccess = {}): StoreSpec {
  if (!spec || spec === 'sqlite') return { kind: 'sqlite' };
  const m = /^([a-z+]+):\/\/(.+)$/.exec(spec);
  const scheme = m ? SCHEMES[m[1]] : undefined;
  if (!m || !scheme)
    throw new UsageError(
      `store "${spec}" must be sqlite or etcd://host:port[,host:port] (or etcd+https://, etcd+http://)`,
    );
  checkAccess(access);
  const hosts = m[2].split(',').map((hp) => {
    if (!/^[a-zA-Z0-9.\-[\]:]+:\d+$/.test(hp)) throw new UsageError(`etcd endpoint "${hp}" must be host:port`);
    return hp;
  });
  const tls = scheme === 'https' || (scheme === 'auto' && Boolean(access.ca || access.cert));
  const remote = hosts.find((hp) => !isLoopback(hp.slice(0, hp.lastIndexOf(':'))));
  if (!tls && scheme === 'auto' && remote) {
    throw new UsageError(
      `etcd at ${remote} without TLS would send leases and passwords in clear: give --etcd-ca (and --etcd-cert/--etcd-key), or write etcd+http:// to accept that`,
    );
  }
  return { kind: 'etcd', endpoints: hosts.map((hp) => `${tls ? 'https' : 'http'}://${hp}`), access };
}

function checkAccess(a: EtcdAccess): void {
  if (Boolean(a.cert) !== Boolean(a.key)) throw new UsageError('--etcd-cert and --etcd-key go together');
  if (a.user && a.password === undefined)
    throw new UsageError(`--etcd-user ${a.user} needs a password: PIPEWRIGHT_ETCD_PASSWORD or --etcd-password-file`);
  if (a.password !== undefined && !a.user) throw new UsageError('an etcd password needs --etcd-user');
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  return ipaddr.isValid(bare) && ipaddr.parse(bare).range() === 'loopback';
}

/** `host`: this host's id in every lease it takes (ops/context.ts keeps it in the state directory). */
export async function openIpam(
  store: Store,
  spec: string | undefined,
  host: string,
  access: EtcdAccess = {},
): Promise<Ipam> {
  const parsed = parseStoreSpec(spec, access);
  if (parsed.kind === 'sqlite') return new Ipam(new SqliteLeaseBackend(store), host);
  const { EtcdLeaseBackend } = await import('../net/ipam/etcd-backend.js');
  return new Ipam(await EtcdLeaseBackend.connect(parsed.endpoints, parsed.access), host);
}
