/**
 * gc: makes the store and the kernel agree again after guests died or pipewright itself was killed
 * mid-operation. An attachment whose guest is gone, or a pending one whose pipewright process is
 * gone, is undone from its record; a lease of this host whose owner has no attachment is released.
 * Reservations (`lease reserve`) and other hosts' leases are never touched, but for the Docker
 * IPAM driver's whose address no Docker endpoint holds any more.
 *
 * The leases are listed before the attachments: an attach records its intent before it leases,
 * so a lease in the list always finds its attachment in the later snapshot (none is taken for an
 * orphan while its attach is under way).
 */
import type { Lease } from '../net/ipam/backend.js';
import { listNetworks } from '../db/networks.js';
import { dockerAvailable, dockerEndpointAddresses, dockerNetworkIds } from '../runtime/docker.js';
import type { GuestKind } from '../model/guest.js';
import { guestAlive } from '../runtime/guest.js';
import { listAttachments, ownerAlive, ownerBusy, settledHostLinks, type AttachmentRecord } from '../db/attachments.js';
import { collectOrphanVolumes } from '../storage/volumes.js';
import type { CoreContext } from './context.js';
import { namedStep } from '../util/faults.js';
import { detachAttachment } from './detach.js';
import { removeDockerNetwork } from './endpoint.js';
import { leaseOwner } from './leases.js';
import { releaseIdleNetwork } from './network.js';
import { releaseBridge, releaseVlanInterface } from './shared-links.js';

export interface GcAction {
  kind: 'attachment' | 'lease' | 'bridge' | 'vlan' | 'volume' | 'network';
  target: string;
  reason: string;
}

async function deadReason(ctx: CoreContext, rec: AttachmentRecord): Promise<string | null> {
  if (rec.state === 'pending') {
    if (ownerBusy(rec)) return null;
    return ownerAlive(rec)
      ? `its operation in this pipewright (pid ${rec.ownerPid}) ended before finishing`
      : `pipewright pid ${rec.ownerPid} died before finishing`;
  }
  return (await guestAlive(rec, ctx.docker)) ? null : 'guest no longer exists';
}

/**
 * The attachments among these whose guest is gone (or whose attach died), undone; the lease owners
 * of the live ones and of the undone. The list is a snapshot: each is judged again as it is just
 * before its detach, in its guest interface's turn (a restore may have brought it back meanwhile).
 */
async function undoDead(ctx: CoreContext, attachments: AttachmentRecord[], dryRun?: boolean) {
  const actions: GcAction[] = [];
  const live = new Set<string>();
  const undone = new Set<string>();
  for (const rec of attachments) {
    const owner = leaseOwner(rec.guestKind, rec.guestId, rec.ifname);
    const reason = await deadReason(ctx, rec);
    const what = `${rec.guestName} ${rec.ifname}`;
    // The seam between the snapshot's verdict and the detach (a race test holds it open).
    if (reason && !dryRun) await namedStep(`gc: ${what} judged gone`, () => {});
    if (
      !reason ||
      !(dryRun || (await detachAttachment(ctx, rec, async (now) => (await deadReason(ctx, now)) !== null)))
    ) {
      live.add(owner);
      continue;
    }
    undone.add(owner);
    actions.push({ kind: 'attachment', target: what, reason });
  }
  return { actions, live, undone };
}

/** Guests that live as long as their namespace: once it is gone (a reboot takes every one), so are they. */
const NAMESPACE_BOUND: GuestKind[] = ['netns', 'path', 'pid', 'cni'];

/**
 * At a daemon's start: the attachments of namespace-bound guests that are gone, undone as gc
 * undoes them (leases released, shared links let go). After a reboot that is all of them, whose
 * leases would otherwise hold a shared pool's addresses for guests that cannot come back. Docker's
 * containers are watch's (a --restart=always one comes back), endpoints Docker's own.
 */
export async function undoGoneNamespaceGuests(ctx: CoreContext): Promise<GcAction[]> {
  const bound = listAttachments(ctx.store).filter((rec) => NAMESPACE_BOUND.includes(rec.guestKind));
  return (await undoDead(ctx, bound)).actions;
}

export async function gc(ctx: CoreContext, opts: { dryRun?: boolean } = {}): Promise<GcAction[]> {
  const leases = await ctx.ipam.leases();
  const attachments = await namedStep('gc: list attachments', () => listAttachments(ctx.store));
  const { actions, live, undone } = await undoDead(ctx, attachments, opts.dryRun);
  for (const lease of leases) {
    // Leases of an attachment undone above went with it (or, with --dry-run, would have).
    if (lease.reserved || lease.host !== ctx.ipam.host || live.has(lease.owner) || undone.has(lease.owner)) continue;
    actions.push({
      kind: 'lease',
      target: `${lease.pool} ${lease.address}`,
      reason: `owner ${lease.owner} has no attachment`,
    });
    if (!opts.dryRun) await ctx.ipam.release(lease.pool, lease.address, lease);
  }
  actions.push(...(await forgottenDockerLeases(ctx, leases, opts.dryRun)));
  actions.push(...(await forgottenDockerNetworks(ctx, opts.dryRun)));
  if (!opts.dryRun) actions.push(...(await idlePodmanNetworks(ctx)));
  if (!opts.dryRun) actions.push(...(await collectLeftovers(ctx)));
  return actions;
}

/**
 * A lease Docker's IPAM call may not have reached an endpoint yet (or a network Docker does not
 * list yet): left alone this long.
 */
const DOCKER_LEASE_GRACE_MS = 60_000;
/** The IPAM driver's owner for an endpoint: docker:<its MAC> (ipam-driver.ts). */
const DOCKER_OWNER = /^docker:([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/**
 * Leases pipewright's Docker IPAM driver gave out (owner docker:<mac>) for addresses no Docker
 * endpoint holds: their container went while the daemon was down, so ReleaseAddress never came.
 * Only when the engine answers (no answer is not "removed"), and only leases older than a minute
 * (RequestAddress comes before the endpoint that shows the address).
 */
async function forgottenDockerLeases(ctx: CoreContext, leases: Lease[], dryRun?: boolean): Promise<GcAction[]> {
  const mine = leases.filter(
    (l) =>
      DOCKER_OWNER.test(l.owner) &&
      l.host === ctx.ipam.host &&
      Date.now() - Date.parse(l.createdAt) > DOCKER_LEASE_GRACE_MS,
  );
  if (!mine.length || !(await dockerAvailable(ctx.docker))) return [];
  const held = await dockerEndpointAddresses(ctx.docker);
  const actions: GcAction[] = [];
  for (const lease of mine.filter((l) => !held.has(l.address))) {
    actions.push({
      kind: 'lease',
      target: `${lease.pool} ${lease.address}`,
      reason: `Docker has no endpoint with it (owner ${lease.owner})`,
    });
    if (!dryRun) await ctx.ipam.release(lease.pool, lease.address, lease);
  }
  return actions;
}

/** pipewright's name for a network Docker made through the network driver: docker-<its ID's first 12 digits>. */
const DOCKER_NETWORK = /^docker-([0-9a-f]{12})$/;

/**
 * Networks Docker made through pipewright's network driver and no longer has: its DeleteNetwork
 * never reached a daemon. Undone as DeleteNetwork undoes them (their endpoint records with them),
 * but only when the engine answers with its list of networks (no answer is not "removed"), and
 * only those older than a minute (Docker lists a network once its CreateNetwork call returned).
 */
async function forgottenDockerNetworks(ctx: CoreContext, dryRun?: boolean): Promise<GcAction[]> {
  const settled = (createdAt: string) => Date.now() - Date.parse(createdAt) > DOCKER_LEASE_GRACE_MS;
  const mine = listNetworks(ctx.store).filter((n) => DOCKER_NETWORK.test(n.name) && settled(n.createdAt));
  if (!mine.length || !(await dockerAvailable(ctx.docker))) return [];
  const known = new Set((await dockerNetworkIds(ctx.docker)).map((id) => id.slice(0, 12)));
  const actions: GcAction[] = [];
  for (const net of mine) {
    const id12 = DOCKER_NETWORK.exec(net.name)![1];
    if (known.has(id12)) continue;
    actions.push({ kind: 'network', target: `${net.name} ${net.hostIf}`, reason: 'Docker has no such network' });
    if (!dryRun) await removeDockerNetwork(ctx, net.name, id12);
  }
  return actions;
}

/** pipewright's name for a podman network of the netavark plugin: podman-<its ID's first 12 digits>. */
const PODMAN_NETWORK = /^podman-[0-9a-f]{12}$/;

/**
 * podman networks (netavark plugin) without a guest left, whose last teardown was killed or never
 * came: their bridge, rules and pool, as that teardown takes them (in turn with setups, so never
 * between a first setup's network and its guest's record).
 */
async function idlePodmanNetworks(ctx: CoreContext): Promise<GcAction[]> {
  const names = new Set([
    ...listNetworks(ctx.store).map((n) => n.name),
    ...(await ctx.ipam.listPools()).map((p) => p.name),
  ]);
  const actions: GcAction[] = [];
  for (const name of [...names].filter((n) => PODMAN_NETWORK.test(n)))
    if (await releaseIdleNetwork(ctx, name)) actions.push({ kind: 'network', target: name, reason: 'no guest left' });
  return actions;
}

/**
 * What a killed operation made before it recorded anything that points at it: an unused bridge or
 * VLAN interface, a volume directory.
 */
async function collectLeftovers(ctx: CoreContext): Promise<GcAction[]> {
  const actions: GcAction[] = [];
  const reason = 'made by pipewright, used by nothing';
  for (const bridge of settledHostLinks(ctx.store, 'bridge')) {
    if (await releaseBridge(ctx, bridge)) actions.push({ kind: 'bridge', target: bridge, reason });
  }
  for (const vlan of settledHostLinks(ctx.store, 'vlan')) {
    if (await releaseVlanInterface(ctx, vlan)) actions.push({ kind: 'vlan', target: vlan, reason });
  }
  for (const name of await collectOrphanVolumes(ctx))
    actions.push({ kind: 'volume', target: name, reason: 'a directory without a volume record' });
  return actions;
}
