/**
 * run: `docker run --net=none` plus pipewright's plumbing, all or nothing. The container is
 * started with the docker CLI (its argument grammar is the user's interface here; the Engine API
 * has no equivalent of it), its ID read from a --cidfile. Volumes go to Docker as --mount flags
 * (so Docker keeps them across restarts) and are recorded as the container's mounts; networks
 * are attached once it runs. If any step fails the container is removed and every lease,
 * interface and rule it got is released.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkAttachSpec, type AttachSpec } from '../model/attachment.js';
import { attach } from '../ops/attach.js';
import type { CoreContext } from '../ops/context.js';
import { detachAttachment } from '../ops/detach.js';
import { resolveGuest } from '../runtime/guest.js';
import { listAttachments, type AttachmentRecord } from '../db/attachments.js';
import { findNetwork } from '../db/networks.js';
import { deleteMountsOf, insertMount } from '../db/volumes.js';
import { mountSource } from '../storage/mount.js';
import { parseMountSpec, type MountSpec } from '../storage/spec.js';
import { hasControl, printable } from '../model/validate.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { run as exec } from '../util/exec.js';

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

/**
 * The i-th network argument as eth<i>; without an address it takes the pool of the pipewright
 * network on that bridge.
 */
function networkSpec(ctx: CoreContext, arg: string, i: number, publish: string[]): AttachSpec {
  const colon = arg.indexOf(':');
  const hostIf = colon < 0 ? arg : arg.slice(0, colon);
  let address = colon < 0 ? '' : arg.slice(colon + 1);
  if (!address) {
    const net = findNetwork(ctx.store, hostIf);
    if (!net)
      throw new UsageError(
        `--network ${arg}: give an address (${hostIf}:<ip>/<prefix> or ${hostIf}:pool:<pool>) or create a network on ${hostIf}`,
      );
    address = `pool:${net.pool}`;
  }
  return checkAttachSpec({ hostIf, addresses: [address], publish, ifname: `eth${i}` });
}

function checkDockerArgs(args: string[]): void {
  if (args.length === 0)
    throw new UsageError(
      'give the docker run arguments after --, e.g. pipewright run --network br0 -- --name web busybox httpd -f',
    );
  const net = args.find((a) => /^--net(work)?(=|$)/.test(a));
  if (net) throw new UsageError(`pipewright run starts the container with --net=none; drop "${net}" and use --network`);
}

/**
 * Docker reads --mount as comma-separated key=value pairs and keeps the last of a key: a path
 * with a comma could add `src=/` behind pipewright's checks. Such paths are refused.
 */
function checkMountPath(path: string, what: string): string {
  if (/[,="'\\]/.test(path) || hasControl(path)) {
    throw new UsageError(
      `${what} "${printable(path)}" may not contain ',', '=', quotes, backslashes or control characters (they would change Docker's --mount)`,
    );
  }
  return path;
}

/** A -v argument checked for Docker's --mount before anything is created. */
function dockerMountSpec(text: string): MountSpec {
  const spec = parseMountSpec(text);
  checkMountPath(spec.target, 'guest path');
  if (spec.hostPath) checkMountPath(spec.hostPath, 'host path');
  return spec;
}

async function dockerMountFlag(ctx: CoreContext, spec: MountSpec): Promise<{ flag: string; hostPath: string }> {
  const path = checkMountPath((await mountSource(ctx, spec, {})).path, 'host path');
  return { flag: `type=bind,src=${path},dst=${spec.target}${spec.readonly ? ',readonly' : ''}`, hostPath: path };
}

/** Starts the container detached (an extra -d is harmless) and returns the ID Docker wrote to the cidfile. */
async function dockerRun(ctx: CoreContext, mountFlags: string[], dockerArgs: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-run-'));
  const cidfile = join(dir, 'cid');
  try {
    await exec(
      'docker',
      ['run', '-d', '--cidfile', cidfile, '--net=none', ...mountFlags.flatMap((m) => ['--mount', m]), ...dockerArgs],
      {
        log: ctx.log,
        timeoutMs: 120_000,
      },
    ).catch((err) => {
      throw new PipewrightError(`docker run failed: ${(err as Error).message}`);
    });
    const id = readFileSync(cidfile, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(id))
      throw new PipewrightError(`docker run wrote no container ID to its cidfile (got "${id.slice(0, 80)}")`);
    return id;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runContainer(ctx: CoreContext, req: RunRequest): Promise<RunResult> {
  checkDockerArgs(req.dockerArgs);
  const specs = req.networks.map((n, i) => networkSpec(ctx, n, i, i === 0 ? req.publish : []));
  if (req.publish.length && specs.length === 0) throw new UsageError('-p needs a --network to publish on');
  const mountSpecs = req.volumes.map(dockerMountSpec);
  const mounts = await Promise.all(mountSpecs.map((m) => dockerMountFlag(ctx, m)));
  const containerId = await dockerRun(
    ctx,
    mounts.map((m) => m.flag),
    req.dockerArgs,
  );
  try {
    const guest = await resolveGuest(`docker:${containerId}`, ctx.docker);
    ctx.store.tx(() => {
      for (const [i, m] of mountSpecs.entries()) {
        insertMount(ctx.store, {
          volume: m.volume,
          hostPath: mounts[i].hostPath,
          guestKind: 'docker',
          guestId: guest.id,
          guestName: guest.name,
          target: m.target,
          readonly: m.readonly,
        });
      }
    });
    for (const spec of specs) await attach(ctx, guest, spec);
    return { containerId, name: guest.name, attachments: listAttachments(ctx.store, guest) };
  } catch (err) {
    await removeAll(ctx, containerId);
    throw err;
  }
}

/** Undo a run: the container, then everything recorded for it. */
async function removeAll(ctx: CoreContext, containerId: string): Promise<void> {
  await exec('docker', ['rm', '-f', containerId], { log: ctx.log, allowFailure: true });
  for (const a of listAttachments(ctx.store, { kind: 'docker', id: containerId })) await detachAttachment(ctx, a);
  ctx.store.tx(() => deleteMountsOf(ctx.store, 'docker', containerId));
}
