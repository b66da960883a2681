/**
 * tune: an attachment whose spec changed only in what can change in place, its routes' metric and
 * its bandwidth limits, brought to the new spec without touching its link, addresses or ports.
 * The record is taken over (pending, this operation's) for the change, as a restore takes it,
 * and ready again with the new spec; a failure puts back what was changed.
 */
import { tuneRouteMetric } from '../net/addresses/guest-config.js';
import { ratesOf, routesOf, routesOfSpec, type AttachSpec } from '../model/attachment.js';
import type { HeldGuest } from '../runtime/guest.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import { PipewrightError } from '../util/errors.js';
import { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';
import { changeFirewallIn } from './firewall-sync.js';
import { leaseAddresses, leaseOwner } from './leases.js';
import { takeOverRecord } from './restore.js';
import { applyRates } from './shaping.js';

export async function tuneAttachment(
  ctx: CoreContext,
  guest: HeldGuest,
  rec: AttachmentRecord,
  spec: AttachSpec,
): Promise<AttachmentRecord> {
  const was = rec.spec;
  const metric = { from: was.metric ?? null, to: spec.metric ?? null };
  if (metric.from !== metric.to && spec.dhcp)
    throw new PipewrightError(
      `${guest.name} ${rec.ifname} takes its routes from DHCP: its metric changes with detach and attach again`,
    );
  const undo = new UndoStack(ctx.log);
  return undo.all(async () => {
    await takeOverRecord(ctx, undo, rec, guest, 'tuning');
    if (metric.from !== metric.to) {
      const owner = leaseOwner(rec.guestKind, rec.guestId, rec.ifname);
      const routes = routesOf({ addresses: await leaseAddresses(ctx, undo, owner, spec), routes: routesOfSpec(spec) });
      const change = (m: typeof metric) => tuneRouteMetric(rec.ifname, routes, m.from, m.to, guest.netns.path, ctx.log);
      await undo.step(
        `metric of ${rec.ifname}'s routes in ${guest.name}`,
        () => change(metric),
        () => change({ from: metric.to, to: metric.from }),
      );
    }
    await applyRates(ctx, undo, rec, ratesOf(was), ratesOf(spec));
    let ready: AttachmentRecord | undefined;
    await undo.step(`record ${rec.ifname}'s new spec`, () =>
      changeFirewallIn(ctx, () => {
        records.setSpec(ctx.store, rec.id, spec);
        records.markReady(ctx.store, rec.id, records.dhcpClientOf(rec));
        ready = records.expectAttachment(ctx.store, rec.guestKind, rec.guestId, rec.ifname, guest.name);
      }),
    );
    return ready!;
  });
}
