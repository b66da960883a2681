/**
 * attach: makes one attachment true, all or nothing. The one path that attach, apply, run and
 * watch's restore share:
 *
 *   check the spec against the host interface (its driver) -> judge an earlier record (existing.ts):
 *   nothing to do, restore, refuse, or clear a leftover -> record intent (pending) -> leases ->
 *   bridge if missing -> link born in the guest -> addresses, up, routes -> host shim -> DHCP ->
 *   record ready with its published ports, the firewall following the store -> hairpin mode
 *
 * Each step registers its inverse; any failure rolls back what this call did and the error names
 * the step.
 */
import { setHairpin } from '../net/links/bridge.js';
import { chooseDriver, type LinkDriver } from '../net/links/index.js';
import type { HostLinkInfo } from '../net/link-state/sysfs.js';
import { hostLinkExists } from '../net/link-state/sysfs.js';
import {
  linkOptions,
  publishOf,
  ratesOf,
  sbrTable,
  shimOf,
  routesOfSpec,
  type AttachmentPlan,
  type AttachSpec,
} from '../model/attachment.js';
import { hostLinkName } from '../model/host-names.js';
import { randomMac } from '../model/mac.js';
import { guestKey, withHeldGuest, type Guest, type HeldGuest } from '../runtime/guest.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { deletePortsOf } from '../db/networks.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import type { ProcessRef } from '../util/process.js';
import { withTurnOn } from '../util/operation.js';
import { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';
import { detachAttachment, turnKey } from './detach.js';
import { judgeExisting } from './existing.js';
import { changeFirewallIn, startFirewallWrite } from './firewall-sync.js';
import { leaseAddresses, leaseOwner } from './leases.js';
import { leaseByDhcp, plumb } from './plumb.js';
import { checkPublishable, recordPorts } from './ports.js';
import { restoreAttachment } from './restore.js';
import { ensureShim } from './shared-links.js';
import { refuseForwardDropForGuest, refuseRejectedPorts } from './forward-drop.js';
import { applyRates } from './shaping.js';
import { tuneAttachment } from './tune.js';

export interface AttachResult {
  attachment: AttachmentRecord;
  /** False when the same attachment already held and nothing was done. */
  changed: boolean;
}

interface ChosenLink {
  driver: LinkDriver;
  host: HostLinkInfo | null;
}

/** The driver for the spec's host interface, and what that kind of link cannot do; nothing is changed. */
export function chooseLink(spec: AttachSpec): ChosenLink {
  const chosen = chooseDriver(spec);
  if (spec.hostShim && !chosen.driver.takesShim) {
    throw new UsageError(
      `--host-shim is for macvlan attachments; ${spec.hostIf} gives a ${chosen.driver.kind} (the host reaches bridge guests through the bridge)`,
    );
  }
  if (spec.publish.length && !chosen.driver.onBridge) {
    throw new UsageError(`published ports need a bridge; ${spec.hostIf} gives a ${chosen.driver.kind}`);
  }
  // Shaped on the host end of a veth: other kinds have none that the guest's traffic passes.
  if (spec.rate && !chosen.driver.onBridge) {
    throw new UsageError(`--rate needs a bridge (a veth's host end); ${spec.hostIf} gives a ${chosen.driver.kind}`);
  }
  return chosen;
}

/** The guest's namespace is opened once for the whole attach (withHeldGuest). */
export function attach(ctx: CoreContext, guest: Guest, spec: AttachSpec): Promise<AttachResult> {
  const link = chooseLink(spec);
  return withHeldGuest(guest, (held) => attachHeld(ctx, held, spec, link));
}

async function attachHeld(
  ctx: CoreContext,
  guest: HeldGuest,
  spec: AttachSpec,
  link: ChosenLink,
): Promise<AttachResult> {
  await checkPublishable(ctx, spec);
  // One operation at a time on a guest interface in this process: judged and acted on in one turn.
  const key = turnKey({ guestKind: guest.kind, guestId: guest.id, ifname: spec.ifname });
  return withTurnOn(key, `${guest.name} ${spec.ifname}`, () => attachInTurn(ctx, guest, spec, link));
}

async function attachInTurn(
  ctx: CoreContext,
  guest: HeldGuest,
  spec: AttachSpec,
  link: ChosenLink,
): Promise<AttachResult> {
  const { verdict, record } = await judgeExisting(ctx, guest, spec);
  switch (verdict) {
    case 'held':
      return { attachment: record!, changed: false };
    case 'lost':
      return { attachment: await restoreAttachment(ctx, record!, guest), changed: true };
    case 'tune':
      return { attachment: await tuneAttachment(ctx, guest, record!, spec), changed: true };
    case 'busy':
      throw new PipewrightError(
        `another pipewright (pid ${record!.ownerPid}) is attaching ${spec.ifname} to ${guest.name}; retry when it is done`,
      );
    case 'changed':
      throw new PipewrightError(
        `${guest.name} already has ${spec.ifname} attached with other settings ` +
          `(${record!.spec.hostIf} ${record!.spec.addresses.join(' ') || (record!.spec.dhcp ? 'dhcp' : '')}); detach it first or choose another -i`,
      );
    case 'leftover':
      if (!(await detachAttachment(ctx, record!)))
        throw new PipewrightError(
          `${guest.name} ${spec.ifname} was changed by another pipewright meanwhile; run the command again`,
        );
      break;
    case 'absent':
      break;
  }
  return create(ctx, guest, spec, link);
}

function chooseHostLink(ctx: CoreContext, guest: Guest, spec: AttachSpec): string {
  if (spec.hostLink) {
    if (records.hostLinkTaken(ctx.store, spec.hostLink))
      throw new PipewrightError(`host interface name ${spec.hostLink} is already used by another attachment`);
    return spec.hostLink;
  }
  return unusedHostLinkName(ctx, guestKey(guest), spec.ifname);
}

/** The derived host link name of a guest interface, varied until no record uses it. */
export function unusedHostLinkName(ctx: CoreContext, guestKey: string, ifname: string): string {
  for (let attempt = 0; ; attempt++) {
    const name = hostLinkName(guestKey, ifname, attempt);
    if (!records.hostLinkTaken(ctx.store, name)) return name;
  }
}

/** The spec resolved against the host: what the driver will make (addresses come from the leases). */
function planOf(ctx: CoreContext, guest: Guest, spec: AttachSpec, { driver, host }: ChosenLink): AttachmentPlan {
  const defaults = driver.plan(host, spec);
  const plan: AttachmentPlan = {
    kind: driver.kind,
    hostIf: spec.hostIf,
    hostLink: defaults.hostEnd ? chooseHostLink(ctx, guest, spec) : null,
    ifname: spec.ifname,
    mac: spec.mac ?? defaults.mac ?? randomMac(),
    mtu: spec.mtu ?? defaults.mtu,
    ...linkOptions(spec),
    addresses: [],
    routes: routesOfSpec(spec),
    sbrTable: null,
  };
  if (plan.hostLink && hostLinkExists(plan.hostLink)) {
    throw new PipewrightError(`host interface ${plan.hostLink} already exists; pick another name with -l`);
  }
  return plan;
}

async function create(ctx: CoreContext, guest: HeldGuest, spec: AttachSpec, link: ChosenLink): Promise<AttachResult> {
  const plan = planOf(ctx, guest, spec, link);
  if (link.driver.onBridge) await refuseForwardDropForGuest(ctx, spec);
  await refuseRejectedPorts(spec.publish);
  // Published ports end in an nftables write: its tool starts now, alongside the plumbing.
  const release = spec.publish.length ? await startFirewallWrite(ctx) : null;
  try {
    return await plumbAndFinish(ctx, guest, spec, link, plan);
  } finally {
    await release?.();
  }
}

async function plumbAndFinish(
  ctx: CoreContext,
  guest: HeldGuest,
  spec: AttachSpec,
  link: ChosenLink,
  plan: AttachmentPlan,
): Promise<AttachResult> {
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    const id: number = await undo.step('record intent', () =>
      ctx.store.tx(() =>
        records.insertPending(ctx.store, {
          guestKind: guest.kind,
          guestId: guest.id,
          guestName: guest.name,
          netnsPath: guest.netnsPath,
          netnsId: guest.netns.id,
          ifname: plan.ifname,
          kind: plan.kind,
          hostIf: plan.hostIf,
          hostLink: plan.hostLink,
          mac: plan.mac,
          mtu: plan.mtu,
          spec,
        }),
      ),
    );
    undo.push('record intent', () => records.deleteAttachment(ctx.store, id));
    if (spec.sbr) plan.sbrTable = sbrTable(id);
    plan.addresses = await leaseAddresses(ctx, undo, leaseOwner(guest.kind, guest.id, spec.ifname), spec);
    await plumb(ctx, undo, id, guest, link.driver, plan);
    await applyRates(ctx, undo, { id, hostLink: plan.hostLink, ifbName: null, ifbIndex: null }, null, ratesOf(spec));
    const shim = shimOf(spec);
    if (shim) await ensureShim(ctx, undo, plan.hostIf, shim);
    const dhcpPid = spec.dhcp ? await leaseByDhcp(ctx, undo, id, guest, plan) : null;
    return { attachment: await finish(ctx, undo, id, guest, plan, spec, dhcpPid), changed: true };
  });
}

/**
 * The last step: the attachment becomes ready, with its published ports, in the same store change
 * the firewall follows (a bridge's first guest brings its forwarding accept, ports their NAT).
 * Rollback turns it back to pending without ports, and the firewall follows again. Returns the
 * record as it became ready (read in that change: a detach by another process may follow at once).
 */
async function finish(
  ctx: CoreContext,
  undo: UndoStack,
  id: number,
  guest: HeldGuest,
  plan: AttachmentPlan,
  spec: AttachSpec,
  dhcpPid: ProcessRef | null,
): Promise<records.AttachmentRecord> {
  const publish = publishOf(spec);
  const change = (mutate: () => void) => changeFirewallIn(ctx, mutate);
  let ready: records.AttachmentRecord | undefined;
  await undo.step(
    `firewall for ${plan.hostIf}`,
    () =>
      change(() => {
        recordPorts(ctx.store, id, guest.name, plan.hostIf, plan.addresses, publish);
        records.markReady(ctx.store, id, dhcpPid);
        ready = records.expectAttachment(ctx.store, guest.kind, guest.id, plan.ifname, guest.name);
      }),
    () =>
      change(() => {
        deletePortsOf(ctx.store, id);
        records.markPending(ctx.store, id);
      }).then(() => {}),
  );
  // A guest reaching its own published port through the host comes back on the port it left by.
  if (publish.length) await undo.step(`hairpin mode on ${plan.hostLink}`, () => setHairpin(plan.hostLink!, ctx.log));
  return ready!;
}
