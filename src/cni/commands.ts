/**
 * The CNI commands on pipewright's core: one attachment per (network, container, ifname), of guest
 * kind `cni`, made by the same attach and undone by the same detach as the CLI's.
 *
 *   main plugin   ADD: pool (an operator's, or one for "subnet") -> network on "bridge" (its
 *                 gateway, masquerade, isolation) -> attach; DEL: detach, or just the leases;
 *                 CHECK: the record, the kernel and the leases against prevResult
 *   IPAM plugin   ADD: a reserved lease owned by cni:<network>/<container>/<ifname>; DEL: release it
 *   both          GC: what `cni.dev/valid-attachments` does not name goes; STATUS: the pool can lease
 */
import ipaddr from 'ipaddr.js';
import type { Lease } from '../net/ipam/backend.js';
import { rangeSize, type Pool } from '../net/ipam/pool.js';
import { dumpRoutes } from '../net/rtnetlink/rtnl.js';
import { withNetnsSocket } from '../net/rtnetlink/sockets.js';
import { hostLinkInfo } from '../net/link-state/sysfs.js';
import { addressOf, sameSubnet, type Family, type IpConfig } from '../model/address.js';
import { checkAttachSpec, NO_HOST_IF, publishOf, staticAddresses, type AttachSpec } from '../model/attachment.js';
import { ratesFromCni } from '../model/rate.js';
import { familyOf, formatPublish } from '../model/publish.js';
import { attach } from '../ops/attach.js';
import type { CoreContext } from '../ops/context.js';
import { detachAttachment, turnKey } from '../ops/detach.js';
import { asIpConfig, leaseOwner } from '../ops/leases.js';
import { portRows } from '../ops/ports.js';
import { createNetwork } from '../ops/network.js';
import { checkAttachment } from '../ops/status.js';
import type { Guest } from '../runtime/guest.js';
import { dhcpClientOf, findAttachment, listAttachments, type AttachmentRecord } from '../db/attachments.js';
import { firewallDirty, listPorts } from '../db/networks.js';
import { withTurnOn } from '../util/operation.js';
import { sameProcess } from '../util/process.js';
import { CniError, ERR } from './errors.js';
import type { CniEnv, CniResult, NetConf } from './netconf.js';
import { defaultRoutes, resultIps } from './result.js';

const POOL_LABEL = 'pipewright.cni';

/** Where addresses come from: the main plugin's own fields, or its "ipam" section. */
type PoolConf = Pick<NetConf, 'pool' | 'subnet' | 'gateway'>;

/** A CNI container's identity in the store: "<network>/<container id>" (its interface apart). */
const cniGuestId = (conf: NetConf, env: CniEnv) => `${conf.name}/${env.containerId}`;
const guestOf = (conf: NetConf, env: CniEnv): Guest => ({
  kind: 'cni',
  id: cniGuestId(conf, env),
  name: env.containerId.slice(0, 12),
  netnsPath: env.netns,
});
const ownerOf = (conf: NetConf, env: CniEnv) => leaseOwner('cni', cniGuestId(conf, env), env.ifname);
const recordOf = (ctx: CoreContext, conf: NetConf, env: CniEnv) =>
  findAttachment(ctx.store, 'cni', cniGuestId(conf, env), env.ifname);
/** The pool a configuration names, or the one its "subnet" makes. */
const poolNameOf = (name: string, c: PoolConf) => c.pool ?? `cni-${name}`;

/** The operator's pool by name, or the network's own for "subnet" (made once, by whichever ADD comes first). */
async function poolOf(ctx: CoreContext, name: string, c: PoolConf): Promise<Pool> {
  if (c.pool && !c.subnet) return ctx.ipam.pool(c.pool);
  if (!c.subnet) throw new CniError(ERR.invalidConfig, 'give "pool" (a pipewright pool) or "subnet"');
  const poolName = poolNameOf(name, c);
  const make = () =>
    ctx.ipam.createPool({
      name: poolName,
      cidr: c.subnet!,
      ...(c.gateway ? { gateway: c.gateway } : {}),
      labels: [`${POOL_LABEL}=${name}`],
    });
  // Of two first ADDs at once one makes the pool; the other finds it.
  const pool: Pool =
    (await ctx.ipam.findPool(poolName)) ??
    (await make().catch(async (err: unknown) => (await ctx.ipam.findPool(poolName)) ?? Promise.reject(err)));
  if (!sameSubnet(pool.subnet, c.subnet)) {
    throw new CniError(ERR.invalidConfig, `pool ${pool.name} is ${pool.subnet}, not ${c.subnet}`);
  }
  return pool;
}

/** Addresses the runtime asks for: runtimeConfig.ips, args.cni.ips, or CNI_ARGS IP= (comma-separated). */
function requestedIps(conf: NetConf, env: CniEnv): string[] {
  return conf.runtimeConfig?.ips ?? conf.args?.cni?.ips ?? (env.args.get('IP')?.split(',').filter(Boolean) || []);
}

const requestedMac = (conf: NetConf, env: CniEnv) =>
  conf.runtimeConfig?.mac ?? conf.args?.cni?.mac ?? env.args.get('MAC') ?? null;

/** A requested address in the pool's form: its prefix, and the pool's gateway as the default route. */
function asPoolAddress(ip: string, pool: Pool): string {
  const address = addressOf(ip);
  return `${address}/${pool.prefix}${pool.gateway && pool.gateway !== address ? `@${pool.gateway}` : ''}`;
}

/** The attachment's host interface: exactly one of "bridge", "master" and "dummy" is given. */
function hostIfOf(conf: NetConf): string {
  const hosts = [conf.bridge, conf.master, conf.dummy === true ? NO_HOST_IF : undefined].filter((h): h is string =>
    Boolean(h),
  );
  if (hosts.length !== 1) {
    throw new CniError(
      ERR.invalidConfig,
      'give one of "bridge" (a bridge), "master" (the parent NIC of a macvlan, ipvlan or VLAN) or "dummy": true (a dummy: no host side)',
    );
  }
  return hosts[0]!;
}

/** The runtime's bandwidth capability (runtimeConfig.bandwidth, the bandwidth plugin's fields) as rate text. */
function bandwidthOf(conf: NetConf): string | null {
  const bw = conf.runtimeConfig?.bandwidth;
  if (bw === undefined || bw === null) return null;
  if (typeof bw !== 'object' || Array.isArray(bw))
    throw new CniError(ERR.invalidConfig, 'runtimeConfig.bandwidth must be an object (ingressRate, ingressBurst, ...)');
  return ratesFromCni(bw);
}

function specOf(conf: NetConf, env: CniEnv, pool: Pool, hostIf: string): AttachSpec {
  const ips = requestedIps(conf, env);
  const ports = conf.runtimeConfig?.portMappings ?? [];
  return checkAttachSpec({
    hostIf,
    ifname: env.ifname,
    addresses: ips.length ? ips.map((ip) => asPoolAddress(ip, pool)) : [`pool:${pool.name}`],
    mac: requestedMac(conf, env),
    mtu: conf.mtu ?? null,
    macvlanMode: conf.mode ?? null,
    ipvlanMode: conf.ipvlanMode ?? null,
    vlan: conf.vlan ?? null,
    hostShim: conf.hostShim ?? null,
    metric: conf.metric ?? null,
    sbr: conf.sbr === true,
    rate: bandwidthOf(conf),
    // As the portmap plugin: a mapping with a host address of the other family maps nothing here.
    publish: ports
      .filter((p) => !p.hostIP || !ipaddr.isValid(p.hostIP) || familyOf(p.hostIP) === pool.family)
      .map((p) =>
        formatPublish({
          proto: (p.protocol ?? 'tcp') as 'tcp' | 'udp',
          hostIp: p.hostIP ?? '',
          hostPort: p.hostPort,
          hostPortEnd: p.hostPort,
          ctrPort: p.containerPort,
        }),
      ),
  });
}

/**
 * The addresses the attachment holds: its leases (with their pools' prefixes and gateways), then
 * static ones outside any pool.
 */
async function heldAddresses(ctx: CoreContext, owner: string, spec: AttachSpec): Promise<IpConfig[]> {
  const leased = await Promise.all(
    (await ctx.ipam.heldBy(owner)).map(async (l: Lease) => asIpConfig(await ctx.ipam.pool(l.pool), l)),
  );
  return [...leased, ...staticAddresses(spec).filter((a) => !leased.some((l) => l.address === a.address))];
}

async function mainResult(ctx: CoreContext, conf: NetConf, env: CniEnv, rec: AttachmentRecord): Promise<CniResult> {
  const addresses = await heldAddresses(ctx, ownerOf(conf, env), rec.spec);
  const host = rec.hostLink ? [{ name: rec.hostLink, mac: hostLinkInfo(rec.hostLink)?.mac ?? '' }] : [];
  return {
    interfaces: [...host, { name: rec.ifname, mac: rec.mac, sandbox: env.netns }],
    ips: resultIps(addresses, host.length),
    routes: defaultRoutes(addresses),
  };
}

export async function addMain(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<CniResult> {
  const hostIf = hostIfOf(conf); // before the pool: a refused netconf makes nothing
  const pool = await poolOf(ctx, conf.name, conf);
  const spec = specOf(conf, env, pool, hostIf);
  if (conf.bridge) {
    await createNetwork(ctx, {
      name: conf.name,
      hostIf: conf.bridge,
      pool: pool.name,
      masquerade: conf.masquerade ?? false,
      isolated: conf.isolated ?? false,
    });
  }
  const { attachment } = await attach(ctx, guestOf(conf, env), spec);
  return mainResult(ctx, conf, env, attachment);
}

/**
 * Undoes the attachment; without a record (DEL twice, or ADD never finished) its leases still go.
 * In the interface's turn: an ADD of the same container still under way in this daemon (the
 * runtime gave up waiting for it) ends first, and its leases are never taken from under it.
 */
export async function delMain(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<void> {
  const key = turnKey({ guestKind: 'cni', guestId: cniGuestId(conf, env), ifname: env.ifname });
  await withTurnOn(key, `${guestOf(conf, env).name} ${env.ifname}`, async () => {
    const rec = recordOf(ctx, conf, env);
    if (rec) await detachAttachment(ctx, rec);
    else await ctx.ipam.releaseOwner(ownerOf(conf, env));
  });
}

/** Every address of prevResult must still be leased to this container (and, for the main plugin, on its interface). */
function checkPrevIps(conf: NetConf, held: string[], live: string[] | null): void {
  for (const ip of conf.prevResult?.ips ?? []) {
    const address = addressOf(ip.address);
    if (!held.includes(address)) throw new CniError(ERR.io, `${address} is no longer leased to this container`);
    if (live && !live.includes(ip.address))
      throw new CniError(ERR.io, `${ip.address} is no longer on the container's interface`);
  }
}

export async function checkMain(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<void> {
  const rec = recordOf(ctx, conf, env);
  if (!rec)
    throw new CniError(
      ERR.unknownContainer,
      `no attachment of ${env.ifname} in container ${env.containerId.slice(0, 12)} on ${conf.name}`,
    );
  const st = await checkAttachment(ctx, rec);
  if (st.status !== 'ok')
    throw new CniError(ERR.io, `${env.ifname}: ${st.status}${st.reason ? ` (${st.reason})` : ''}`);
  const held = await heldAddresses(ctx, ownerOf(conf, env), rec.spec);
  checkPrevIps(
    conf,
    held.map((a) => a.address),
    st.link?.addresses ?? [],
  );
  await checkPrevRoutes(conf, env);
  const rows = portRows(held, publishOf(rec.spec)).length;
  if (listPorts(ctx.store, rec.id).length !== rows || firewallDirty(ctx.store)) {
    throw new CniError(ERR.io, 'the published ports are not all in the firewall (run pipewright firewall sync)');
  }
  const dhcp = dhcpClientOf(rec);
  if (rec.spec.dhcp && !(dhcp && sameProcess(dhcp))) throw new CniError(ERR.io, 'the DHCP client is gone');
}

/** Every route of prevResult must still be in the container's table (its default route above all). */
async function checkPrevRoutes(conf: NetConf, env: CniEnv): Promise<void> {
  const routes = conf.prevResult?.routes ?? [];
  if (!routes.length) return;
  for (const r of routes)
    if (!ipaddr.isValidCIDR(r.dst) || (r.gw !== undefined && !ipaddr.isValid(r.gw)))
      throw new CniError(
        ERR.decode,
        `prevResult's route ${JSON.stringify(r)}: dst must be a CIDR and gw an IP address`,
      );
  // Read over rtnetlink, not `ip -j`: the guest decides how many routes there are, and JSON.parse
  // would put their short strings in V8's string table (hashed with a fixed seed here).
  const [v4, v6] = await withNetnsSocket(env.netns, async (sock) => {
    const want = (f: Family) => routes.some((r) => familyOf(r.dst) === f);
    return [want(4) ? await dumpRoutes(sock, 4) : [], want(6) ? await dumpRoutes(sock, 6) : []];
  });
  const has = (dst: string, gw?: string) => {
    const [net, len] = ipaddr.parseCIDR(dst);
    const to = len === 0 ? null : `${net.toString()}/${len}`; // the default route has no destination
    const via = gw ? ipaddr.parse(gw).toString() : undefined;
    return (familyOf(dst) === 6 ? v6 : v4).some((r) => r.dst === to && (!via || r.gateway === via));
  };
  for (const r of routes)
    if (!has(r.dst, r.gw)) throw new CniError(ERR.io, `the route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is gone`);
}

export async function addIpam(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<CniResult> {
  const pool = await poolOf(ctx, conf.name, conf.ipam ?? {});
  const owner = ownerOf(conf, env);
  const [want] = requestedIps(conf, env).map(addressOf);
  const held = (await ctx.ipam.heldBy(owner)).find((l) => l.pool === pool.name && (!want || l.address === want));
  // A reservation: the main plugin, not a pipewright record, owns the interface (pipewright's gc
  // leaves it to CNI's GC).
  const lease =
    held ??
    (want ? await ctx.ipam.claim(pool.name, want, owner, true) : await ctx.ipam.allocate(pool.name, owner, true));
  const address = asIpConfig(pool, lease);
  return { ips: resultIps([address]), routes: defaultRoutes([address]) };
}

export async function delIpam(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<void> {
  await ctx.ipam.releaseOwner(ownerOf(conf, env));
}

export async function checkIpam(ctx: CoreContext, conf: NetConf, env: CniEnv): Promise<void> {
  const held = (await ctx.ipam.heldBy(ownerOf(conf, env))).map((l) => l.address);
  if (!held.length)
    throw new CniError(
      ERR.unknownContainer,
      `container ${env.containerId.slice(0, 12)} holds no address on ${conf.name}`,
    );
  checkPrevIps(conf, held, null);
}

/** GC: attachments and leases of this network that the runtime's valid list does not name. */
export async function gcNetwork(ctx: CoreContext, conf: NetConf): Promise<void> {
  const valid = new Set(
    (conf['cni.dev/valid-attachments'] ?? []).map((v) => `${conf.name}/${v.containerID}/${v.ifname}`),
  );
  const prefix = `${conf.name}/`;
  for (const rec of listAttachments(ctx.store).filter((r) => r.guestKind === 'cni' && r.guestId.startsWith(prefix))) {
    if (!valid.has(`${rec.guestId}/${rec.ifname}`)) await detachAttachment(ctx, rec);
  }
  for (const lease of await ctx.ipam.leases()) {
    const id = lease.owner.startsWith(`cni:${prefix}`) ? lease.owner.slice('cni:'.length) : null;
    if (id && !valid.has(id) && lease.host === ctx.ipam.host) await ctx.ipam.release(lease.pool, lease.address, lease);
  }
}

/** STATUS: the pool exists and has an address left to lease (code 50 otherwise). */
export async function status(ctx: CoreContext, conf: NetConf): Promise<void> {
  const c: PoolConf = conf.type === 'pipewright' ? conf : (conf.ipam ?? {});
  const name = poolNameOf(conf.name, c);
  const pool = await ctx.ipam.findPool(name);
  if (!pool) {
    if (c.subnet) return; // made by the first ADD
    throw new CniError(ERR.notAvailable, `pool ${name} does not exist`);
  }
  const leased = (await ctx.ipam.leases({ pool: pool.name })).length;
  if (BigInt(leased + (pool.gateway ? 1 : 0)) >= rangeSize(pool))
    throw new CniError(ERR.notAvailable, `pool ${pool.name} has no free address`);
}
