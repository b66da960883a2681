/** Finds the records of a guest as the user names it, even after the guest itself is gone. */
import { resolveGuest } from '../runtime/guest.js';
import { listAttachments, type AttachmentRecord } from '../db/attachments.js';
import type { CoreContext } from '../ops/context.js';

export async function findRecordsForGuest(ctx: CoreContext, spec: string): Promise<AttachmentRecord[]> {
  const store = ctx.store;
  try {
    const g = await resolveGuest(spec, ctx.docker);
    const recs = listAttachments(store, g);
    if (recs.length) return recs;
  } catch {
    // The guest is gone (container removed, netns deleted): fall back to what was recorded.
  }
  const bare = spec.replace(/^(docker|pid|netns):/, '');
  return listAttachments(store).filter(
    (r) =>
      r.guestName === bare ||
      r.guestId === bare ||
      r.guestId.startsWith(`${bare}@`) ||
      (r.guestKind === 'docker' && bare.length >= 12 && r.guestId.startsWith(bare)),
  );
}
