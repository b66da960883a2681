/**
 * apply: reconciles the host to a file of pools, networks, volumes and running containers'
 * plumbing. It plans first (what is missing, what differs, and with --prune what the file no
 * longer names), prints the plan with --dry-run, and otherwise carries it out in order:
 * pools, networks, volumes, containers; removals last, in reverse. Applying the same file twice
 * plans nothing the second time. What cannot be changed in place (a pool's subnet, a volume's
 * backing) is an error naming the file and line, before anything is done.
 */
import { changeFirewallIn } from '../ops/firewall-sync.js';
import { definePool, type Pool, type PoolInput } from '../net/ipam/pool.js';
import { checkAttachSpec, DEFAULT_IFNAME } from '../model/attachment.js';
import { checkIfname } from '../model/validate.js';
import { attach, chooseLink } from '../ops/attach.js';
import type { CoreContext } from '../ops/context.js';
import { detachAttachment } from '../ops/detach.js';
import { judgeExisting } from '../ops/existing.js';
import { createNetwork, removeNetwork } from '../ops/network.js';
import { resolveGuest, type Guest } from '../runtime/guest.js';
import { listAttachments } from '../db/attachments.js';
import { findNetwork, listNetworks, updateNetworkPolicy } from '../db/networks.js';
import { findVolume, listMounts, listVolumes, updateVolumeLabels } from '../db/volumes.js';
import { mountInto, unmountFrom } from '../storage/mount.js';
import { parseMountSpec, parseVolumeOpts, type MountSpec } from '../storage/spec.js';
import { createVolume, dataDir, removeVolume } from '../storage/volumes.js';
import { PipewrightError, describe } from '../util/errors.js';
import { loadApplyFile, type ApplyFile, type Locate } from './apply-file.js';

export interface Action {
  /** "create pool lan", "attach web eth0 to br-lan", ... */
  description: string;
  run: () => Promise<unknown>;
}

interface Planner {
  ctx: CoreContext;
  spec: ApplyFile;
  locate: Locate;
  prune: boolean;
  actions: Action[];
  removals: Action[];
}

/** Runs a check, turning its error into one naming the file and line of `path`. */
async function at<T>(p: Planner, path: (string | number)[], fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new PipewrightError(`${p.locate(path)}: ${describe(err)}`);
  }
}

const poolShape = (x: Pool) => JSON.stringify([x.subnet, x.gateway, x.rangeStart, x.rangeEnd, x.exclude, x.labels]);

/** --prune removes what a section no longer names; a section the file leaves out is not managed by it. */
function prunes(p: Planner, section: keyof ApplyFile): boolean {
  return p.prune && p.spec[section] !== undefined;
}

async function planPools(p: Planner): Promise<void> {
  const ipam = p.ctx.ipam;
  for (const [i, pool] of (p.spec.pools ?? []).entries()) {
    const input: PoolInput = {
      name: pool.name,
      cidr: pool.subnet,
      gateway: pool.gateway ?? undefined,
      noGateway: pool.gateway === null,
      range: pool.range,
      exclude: pool.exclude,
      labels: Object.entries(pool.labels ?? {}).map(([k, v]) => `${k}=${v}`),
    };
    const want = await at(p, ['pools', i], () => definePool(input));
    const have = await ipam.findPool(pool.name);
    if (!have)
      p.actions.push({ description: `create pool ${pool.name} ${want.subnet}`, run: () => ipam.createPool(input) });
    else if (poolShape(have) !== poolShape(want)) {
      throw new PipewrightError(
        `${p.locate(['pools', i])}: pool ${pool.name} exists with other settings (${have.subnet}); remove it first, apply does not change a pool in place`,
      );
    }
  }
  if (!prunes(p, 'pools')) return;
  const named = new Set((p.spec.pools ?? []).map((x) => x.name));
  for (const have of await ipam.listPools()) {
    if (!named.has(have.name))
      p.removals.unshift({ description: `remove pool ${have.name}`, run: () => ipam.removePool(have.name) });
  }
}

async function planNetworks(p: Planner): Promise<void> {
  for (const [i, n] of (p.spec.networks ?? []).entries()) {
    await at(p, ['networks', i, 'bridge'], () => checkIfname(n.bridge, 'bridge'));
    const have = findNetwork(p.ctx.store, n.name);
    const [masquerade, isolated] = [Boolean(n.masquerade), Boolean(n.isolated)];
    if (!have) {
      p.actions.push({
        description: `create network ${n.name} on ${n.bridge}`,
        run: () => createNetwork(p.ctx, { name: n.name, hostIf: n.bridge, pool: n.pool, masquerade, isolated }),
      });
    } else if (have.hostIf !== n.bridge || have.pool !== n.pool) {
      throw new PipewrightError(
        `${p.locate(['networks', i])}: network ${n.name} exists on ${have.hostIf} with pool ${have.pool}; remove it first`,
      );
    } else if (have.masquerade !== masquerade || have.isolated !== isolated) {
      p.actions.push({
        description: `update network ${n.name}: masquerade ${masquerade}, isolated ${isolated}`,
        run: () => changeFirewallIn(p.ctx, () => updateNetworkPolicy(p.ctx.store, n.name, masquerade, isolated)),
      });
    }
  }
  if (!prunes(p, 'networks')) return;
  const named = new Set((p.spec.networks ?? []).map((x) => x.name));
  for (const have of listNetworks(p.ctx.store)) {
    if (!named.has(have.name))
      p.removals.unshift({ description: `remove network ${have.name}`, run: () => removeNetwork(p.ctx, have.name) });
  }
}

async function planVolumes(p: Planner): Promise<void> {
  for (const [i, v] of (p.spec.volumes ?? []).entries()) {
    const options = await at(p, ['volumes', i], () => parseVolumeOpts(v.opts ?? [], v.size));
    const labels = v.labels ?? {};
    const have = findVolume(p.ctx.store, v.name);
    if (!have) {
      p.actions.push({
        description: `create volume ${v.name}`,
        run: () =>
          createVolume(
            p.ctx,
            v.name,
            options,
            Object.entries(labels).map(([k, x]) => `${k}=${x}`),
          ),
      });
    } else if (JSON.stringify(have.options) !== JSON.stringify(options)) {
      throw new PipewrightError(
        `${p.locate(['volumes', i])}: volume ${v.name} exists with other options ${JSON.stringify(have.options)}; its data would be lost, remove it first`,
      );
    } else if (JSON.stringify(have.labels) !== JSON.stringify(labels)) {
      p.actions.push({
        description: `update labels of volume ${v.name}`,
        run: async () => p.ctx.store.tx(() => updateVolumeLabels(p.ctx.store, v.name, labels)),
      });
    }
  }
  if (!prunes(p, 'volumes')) return;
  const named = new Set((p.spec.volumes ?? []).map((x) => x.name));
  for (const have of listVolumes(p.ctx.store)) {
    if (!named.has(have.name))
      p.removals.unshift({ description: `remove volume ${have.name}`, run: () => removeVolume(p.ctx, have.name) });
  }
}

/** What attach does for a verdict, in the plan's words (the others make it anew). */
const VERBS: Partial<Record<string, string>> = { lost: 'restore', tune: 'tune (metric, rates)' };

async function planInterfaces(p: Planner, i: number, guest: Guest): Promise<void> {
  const ifaces = p.spec.containers![i].interfaces ?? [];
  for (const [j, x] of ifaces.entries()) {
    const path = ['containers', i, 'interfaces', j];
    const spec = await at(p, path, () => {
      const checked = checkAttachSpec({
        hostIf: x.on,
        addresses: x.addresses,
        ifname: x.ifname,
        mac: x.mac,
        mtu: x.mtu,
        routes: x.routes,
        publish: x.publish,
        metric: x.metric,
        rate: x.rate,
        sbr: x.sbr,
      });
      chooseLink(checked);
      return checked;
    });
    const { verdict, record } = await judgeExisting(p.ctx, guest, spec);
    if (verdict === 'held') continue;
    if (verdict === 'changed')
      p.actions.push({
        description: `detach ${guest.name} ${spec.ifname} (settings changed)`,
        run: () => detachAttachment(p.ctx, record!),
      });
    p.actions.push({
      description: `${VERBS[verdict] ?? 'attach'} ${guest.name} ${spec.ifname} on ${x.on}`,
      run: () => attach(p.ctx, guest, spec),
    });
  }
  if (!p.prune || p.spec.containers![i].interfaces === undefined) return;
  const named = new Set(ifaces.map((x) => x.ifname ?? DEFAULT_IFNAME));
  for (const rec of listAttachments(p.ctx.store, guest)) {
    if (!named.has(rec.ifname))
      p.removals.unshift({
        description: `detach ${guest.name} ${rec.ifname}`,
        run: () => detachAttachment(p.ctx, rec),
      });
  }
}

function sameMount(
  p: Planner,
  spec: MountSpec,
  m: { volume: string | null; hostPath: string; readonly: boolean },
): boolean {
  const source = spec.volume
    ? m.volume === spec.volume && m.hostPath === dataDir(p.ctx.store.stateDir, spec.volume)
    : m.volume === null && m.hostPath === spec.hostPath;
  return source && m.readonly === spec.readonly;
}

async function planMounts(p: Planner, i: number, guest: Guest): Promise<void> {
  const texts = p.spec.containers![i].mounts ?? [];
  const have = listMounts(p.ctx.store, { guestKind: guest.kind, guestId: guest.id });
  for (const [j, text] of texts.entries()) {
    const spec = await at(p, ['containers', i, 'mounts', j], () => parseMountSpec(text));
    const current = have.find((m) => m.target === spec.target);
    if (current && sameMount(p, spec, current)) continue;
    if (current)
      p.actions.push({
        description: `unmount ${guest.name} ${spec.target} (source changed)`,
        run: () => unmountFrom(p.ctx, guest, current),
      });
    p.actions.push({ description: `mount ${text} into ${guest.name}`, run: () => mountInto(p.ctx, guest, spec) });
  }
  if (!p.prune || p.spec.containers![i].mounts === undefined) return;
  const targets = new Set(texts.map((t) => parseMountSpec(t).target));
  for (const m of have) {
    if (!targets.has(m.target))
      p.removals.unshift({ description: `unmount ${guest.name} ${m.target}`, run: () => unmountFrom(p.ctx, guest, m) });
  }
}

async function planContainers(p: Planner): Promise<void> {
  const seen = new Set<string>();
  for (const [i, c] of (p.spec.containers ?? []).entries()) {
    const guest = await at(p, ['containers', i, 'container'], () =>
      resolveGuest(`docker:${c.container}`, p.ctx.docker),
    );
    seen.add(guest.id);
    await planInterfaces(p, i, guest);
    await planMounts(p, i, guest);
  }
  if (!prunes(p, 'containers')) return;
  for (const rec of listAttachments(p.ctx.store).filter((a) => a.guestKind === 'docker' && !seen.has(a.guestId))) {
    p.removals.unshift({
      description: `detach ${rec.guestName} ${rec.ifname}`,
      run: () => detachAttachment(p.ctx, rec),
    });
  }
  for (const m of listMounts(p.ctx.store, { guestKind: 'docker' }).filter((x) => !seen.has(x.guestId))) {
    p.removals.unshift({
      description: `unmount ${m.guestName} ${m.target}`,
      run: async () => unmountFrom(p.ctx, await resolveGuest(`docker:${m.guestId}`, p.ctx.docker).catch(() => null), m),
    });
  }
}

export async function planApply(ctx: CoreContext, file: string, prune = false): Promise<Action[]> {
  const { spec, locate } = loadApplyFile(file);
  const p: Planner = { ctx, spec, locate, prune, actions: [], removals: [] };
  await planPools(p);
  await planNetworks(p);
  await planVolumes(p);
  await planContainers(p);
  return [...p.actions, ...p.removals];
}
