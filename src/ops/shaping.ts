/**
 * An attachment's bandwidth limits brought from what the host end has (`had`) to what its spec
 * says (`want`): at attach and restore (a new host end: had is null), at a change in place
 * (tune.ts), and gone at detach (the host end's qdiscs go with it; the ifb is removed by its
 * recorded index). The ifb's name is recorded before it is made, its index right after.
 */
import {
  createIfb,
  isOurIfb,
  limitRoot,
  redirectToIfb,
  removeIfb,
  stopRedirect,
  unlimitRoot,
} from '../net/shaping/tc.js';
import { ifbName } from '../model/host-names.js';
import type { Rates } from '../model/rate.js';
import * as records from '../db/attachments.js';
import type { AttachmentRecord } from '../db/attachments.js';
import type { UndoStack } from '../util/undo.js';
import type { CoreContext } from './context.js';

/** What shaping needs of a record: its id, host end and ifb as recorded. */
export type Shaped = Pick<AttachmentRecord, 'id' | 'hostLink' | 'ifbName' | 'ifbIndex'>;

export async function applyRates(
  ctx: CoreContext,
  undo: UndoStack,
  rec: Shaped,
  had: Rates | null,
  want: Rates | null,
): Promise<void> {
  const dev = rec.hostLink;
  if (!dev) return;
  if (want?.ingress)
    await undo.step(
      `limit traffic into the guest on ${dev}`,
      () => limitRoot(dev, want.ingress!, ctx.log),
      () => (had?.ingress ? limitRoot(dev, had.ingress, ctx.log) : unlimitRoot(dev, ctx.log)),
    );
  else if (had?.ingress)
    await undo.step(
      `lift the limit into the guest on ${dev}`,
      () => unlimitRoot(dev, ctx.log),
      () => limitRoot(dev, had.ingress!, ctx.log),
    );
  if (want?.egress) await limitEgress(ctx, undo, rec, dev, had, want);
  else if (had?.egress || rec.ifbName) await liftEgress(ctx, undo, rec, dev, had);
}

async function limitEgress(
  ctx: CoreContext,
  undo: UndoStack,
  rec: Shaped,
  dev: string,
  had: Rates | null,
  want: Rates,
): Promise<void> {
  const { name: ifb, made } = await ensureIfb(ctx, undo, rec, dev);
  await undo.step(
    `limit traffic out of the guest on ${ifb}`,
    () => limitRoot(ifb, want.egress!, ctx.log),
    () => (had?.egress ? limitRoot(ifb, had.egress, ctx.log) : Promise.resolve()),
  );
  // A redirect outlives the ifb it pointed at (mirred holds the index): a new ifb needs it anew.
  if (!had?.egress || made)
    await undo.step(
      `redirect ${dev}'s ingress to ${ifb}`,
      () => stopRedirect(dev, ctx.log).then(() => redirectToIfb(dev, ifb, ctx.log)),
      () => stopRedirect(dev, ctx.log),
    );
}

/** The recorded ifb while it is still ours, else a new one (forgotten and removed on rollback). */
async function ensureIfb(
  ctx: CoreContext,
  undo: UndoStack,
  rec: Shaped,
  dev: string,
): Promise<{ name: string; made: boolean }> {
  if (rec.ifbName && rec.ifbIndex !== null && (await isOurIfb(rec.ifbName, rec.ifbIndex)))
    return { name: rec.ifbName, made: false };
  const name = ifbName(dev);
  undo.push(`record ifb ${name}`, () => ctx.store.tx(() => records.setIfb(ctx.store, rec.id, null, null)));
  await makeIfb(ctx, rec, name, () =>
    undo.step(
      `create ifb ${name}`,
      () => createIfb(name, ctx.log),
      () => removeIfb(name, null, ctx.log),
    ),
  );
  return { name, made: true };
}

/** Makes the ifb: its name recorded before (gc finds one a crash left), its index right after. */
async function makeIfb(ctx: CoreContext, rec: Shaped, name: string, create = () => createIfb(name, ctx.log)) {
  ctx.store.tx(() => records.setIfb(ctx.store, rec.id, name, null));
  const index = await create();
  ctx.store.tx(() => records.setIfb(ctx.store, rec.id, name, index));
}

/**
 * No limit out of the guest any more: the redirect off the host end, the ifb removed, its record
 * cleared. Undone by a new ifb with the old limit (the redirect's own undo points it there).
 */
async function liftEgress(ctx: CoreContext, undo: UndoStack, rec: Shaped, dev: string, had: Rates | null) {
  if (had?.egress)
    await undo.step(
      `stop redirecting ${dev}'s ingress`,
      () => stopRedirect(dev, ctx.log),
      () => (rec.ifbName ? redirectToIfb(dev, rec.ifbName, ctx.log) : Promise.resolve()),
    );
  if (!rec.ifbName) return;
  const name = rec.ifbName;
  await undo.step(
    `remove ifb ${name}`,
    () => dropIfb(ctx, rec),
    async () => {
      if (!had?.egress) return;
      await makeIfb(ctx, rec, name);
      await limitRoot(name, had.egress, ctx.log);
    },
  );
}

/** The attachment's ifb removed (by its recorded index) and forgotten; detach's step. */
export async function dropIfb(ctx: CoreContext, rec: Shaped): Promise<void> {
  if (!rec.ifbName) return;
  await removeIfb(rec.ifbName, rec.ifbIndex, ctx.log);
  ctx.store.tx(() => records.setIfb(ctx.store, rec.id, null, null));
}
