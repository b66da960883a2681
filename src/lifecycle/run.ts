/**
 * run: `docker run --net=none` plus pipewright's plumbing, all or nothing. Volumes go to Docker as
 * --mount flags (so Docker keeps them across restarts) and are recorded as the container's
 * mounts; networks are attached once it runs. If any step fails the container is removed and
 * every lease, interface and rule it got is released.
 */
import { PipewrightError, UsageError } from '../util/errors.js';
import { run as exec } from '../util/exec.js';
import { attach } from '../ops/attach.js';
import { parseAttachText } from '../model/attachment.js';
import type { CoreContext } from '../ops/context.js';
import { releaseAttachment } from '../ops/detach.js';
import { resolveGuest, type Guest } from '../runtime/guest.js';
import { listAttachments, type AttachmentRecord } from '../store/attachments.js';
import { findNetwork } from '../store/networks.js';
import { deleteMount, findVolume, insertMount, listMounts } from '../store/volumes.js';
import { checkHostPath } from '../storage/host-path.js';
import { parseMountSpec, type MountSpec } from '../storage/spec.js';
import { createVolume, dataDir, ensureBacked } from '../storage/volumes.js';

export interface RunRequest {
  /** `<br|if>[:<ip>/<prefix>[@gw]|pool:<p>]`, repeatable; the first one gets the published ports. */
  networks: string[];
  publish: string[];
  volumes: string[];
  dockerArgs: string[];
}

export interface RunResult {
  containerId: string;
  name: string;
  attachments: AttachmentRecord[];
}

/** A network argument without an address uses the pool of the pipewright network on that bridge. */
function networkText(ctx: CoreContext, arg: string, publish: string[]) {
  const colon = arg.indexOf(':');
  const hostIf = colon < 0 ? arg : arg.slice(0, colon);
  let address = colon < 0 ? '' : arg.slice(colon + 1);
  if (!address) {
    const net = findNetwork(ctx.store, hostIf);
    if (!net) throw new UsageError(`--network ${arg}: give an address (${hostIf}:<ip>/<prefix> or ${hostIf}:pool:<pool>) or create a network on ${hostIf}`);
    address = `pool:${net.pool}`;
  }
  return parseAttachText({ hostIf, addresses: [address], publish, ifname: undefined });
}

function checkDockerArgs(args: string[]): void {
  if (args.length === 0) throw new UsageError('give the docker run arguments after --, e.g. pipewright run --network br0 -- --name web busybox httpd -f');
  const net = args.find((a) => /^--net(work)?(=|$)/.test(a));
  if (net) throw new UsageError(`pipewright run starts the container with --net=none; drop "${net}" and use --network`);
}

async function dockerMountFlag(ctx: CoreContext, spec: MountSpec): Promise<{ flag: string; hostPath: string }> {
  let hostPath: string;
  if (spec.volume) {
    const v = findVolume(ctx.store, spec.volume) ?? (await createVolume(ctx, spec.volume, {}));
    await ensureBacked(ctx, v);
    hostPath = dataDir(ctx.store.stateDir, v.name);
  } else hostPath = checkHostPath(spec.hostPath!, ctx.store.stateDir);
  return { flag: `type=bind,src=${hostPath},dst=${spec.target}${spec.readonly ? ',readonly' : ''}`, hostPath };
}

export async function runContainer(ctx: CoreContext, req: RunRequest): Promise<RunResult> {
  checkDockerArgs(req.dockerArgs);
  const attaches = req.networks.map((n, i) => networkText(ctx, n, i === 0 ? req.publish : []));
  if (req.publish.length && attaches.length === 0) throw new UsageError('-p needs a --network to publish on');
  attaches.forEach((a, i) => { a.ifname = `eth${i}`; });
  const mountSpecs = req.volumes.map(parseMountSpec);
  const mounts = await Promise.all(mountSpecs.map((m) => dockerMountFlag(ctx, m)));
  const detached = req.dockerArgs.some((a) => a === '-d' || a === '--detach') ? [] : ['-d'];
  const out = await exec('docker', ['run', ...detached, '--net=none', ...mounts.flatMap((m) => ['--mount', m.flag]), ...req.dockerArgs], { log: ctx.log, timeoutMs: 120_000 })
    .catch((err) => { throw new PipewrightError(`docker run failed: ${(err as Error).message}`); });
  const containerId = out.stdout.trim().split('\n').pop()!;
  let guest: Guest | undefined;
  try {
    guest = await resolveGuest(`docker:${containerId}`);
    ctx.store.tx(() => mountSpecs.forEach((m, i) => insertMount(ctx.store, {
      volume: m.volume, hostPath: mounts[i].hostPath, guestKind: 'docker', guestId: guest!.id, guestName: guest!.name, target: m.target, readonly: m.readonly,
    })));
    for (const a of attaches) await attach(ctx, guest, a);
    return { containerId, name: guest.name, attachments: listAttachments(ctx.store, guest) };
  } catch (err) {
    await removeAll(ctx, containerId);
    throw err;
  }
}

/** Undo a run: the container, then everything recorded for it. */
async function removeAll(ctx: CoreContext, containerId: string): Promise<void> {
  await exec('docker', ['rm', '-f', containerId], { log: ctx.log, allowFailure: true });
  for (const a of listAttachments(ctx.store).filter((x) => x.guestKind === 'docker' && x.guestId === containerId)) await releaseAttachment(ctx, a);
  ctx.store.tx(() => listMounts(ctx.store, { guestKind: 'docker', guestId: containerId }).forEach((m) => deleteMount(ctx.store, m.id)));
}
