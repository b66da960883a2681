/**
 * What an earlier record means for a wanted attachment of the same guest interface. attach, apply
 * and watch's restore all decide here, so they can never disagree:
 *
 *   absent    nothing recorded: make it
 *   held      ready, same spec, its interface is in the guest: nothing to do
 *   lost      ready, same spec, its interface is gone (the guest restarted): restore it
 *   tune      ready, interface present, the spec differs only in its metric or rates: change them in place
 *   changed   ready with other settings, interface present: attach refuses, apply replaces it
 *   leftover  a crashed attach, or other settings whose interface is gone: clear it, then make
 *   busy      another operation is attaching it right now (in another live pipewright, or in this one)
 */
import { readLink } from '../net/link-state/link-state.js';
import { sameLink, sameSpec, type AttachSpec } from '../model/attachment.js';
import { workingNetns, type Guest, type HeldGuest } from '../runtime/guest.js';
import { findAttachment, ownerBusy, type AttachmentRecord } from '../db/attachments.js';
import type { CoreContext } from './context.js';

export type Verdict = 'absent' | 'held' | 'lost' | 'tune' | 'changed' | 'leftover' | 'busy';

export interface Existing {
  verdict: Verdict;
  record: AttachmentRecord | null;
}

export async function judgeExisting(ctx: CoreContext, guest: Guest | HeldGuest, spec: AttachSpec): Promise<Existing> {
  const record = findAttachment(ctx.store, guest.kind, guest.id, spec.ifname);
  const is = (verdict: Verdict): Existing => ({ verdict, record });
  if (!record) return is('absent');
  // This process's own pending records are leftovers only once their operation has ended.
  if (record.state === 'pending') return is(ownerBusy(record) ? 'busy' : 'leftover');
  const present = (await readLink(spec.ifname, workingNetns(guest))) !== null;
  if (sameSpec(record.spec, spec)) return is(present ? 'held' : 'lost');
  if (!present) return is('leftover');
  return is(sameLink(record.spec, spec) ? 'tune' : 'changed');
}
