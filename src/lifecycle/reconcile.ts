/**
 * Makes one Docker container's plumbing match what is recorded for it:
 *   running, interfaces or mounts missing (it restarted)  -> restore them in its new namespaces
 *   removed                                               -> detach, release leases, drop rules and mounts
 *   stopped                                               -> nothing (it is put back when it starts)
 * Interfaces go through attach with their own recorded spec: the same decision (held, lost, ...)
 * as every other front end. `watch` calls this on every start and destroy event and, at startup
 * and after reconnecting to the engine, for every container the store knows.
 */
import { attach } from '../ops/attach.js';
import type { CoreContext } from '../ops/context.js';
import { detachAttachment } from '../ops/detach.js';
import { inspectKnownContainer } from '../runtime/docker.js';
import { containerGuest } from '../runtime/guest.js';
import { listAttachments } from '../db/attachments.js';
import { deleteMountsOf, listMounts } from '../db/volumes.js';
import { restoreMounts } from '../storage/mount.js';
import { describe } from '../util/errors.js';

export interface ReconcileReport {
  container: string;
  name: string;
  action: 'restored' | 'cleaned' | 'unchanged' | 'stopped' | 'failed';
  detail: string;
}

export async function reconcileContainer(ctx: CoreContext, id: string): Promise<ReconcileReport> {
  const attachments = listAttachments(ctx.store, { kind: 'docker', id }).filter((a) => a.state === 'ready');
  const mounts = listMounts(ctx.store, { guestKind: 'docker', guestId: id });
  const name = attachments[0]?.guestName ?? mounts[0]?.guestName ?? id.slice(0, 12);
  const report = (action: ReconcileReport['action'], detail: string): ReconcileReport => ({
    container: id,
    name,
    action,
    detail,
  });
  try {
    const c = await inspectKnownContainer(id, ctx.docker);
    if (!c) {
      for (const a of attachments) await detachAttachment(ctx, a);
      ctx.store.tx(() => deleteMountsOf(ctx.store, 'docker', id));
      return report('cleaned', `${attachments.length} interface(s), ${mounts.length} mount(s)`);
    }
    if (!c.running) return report('stopped', 'put back when it starts');
    const guest = containerGuest(c);
    const restored: string[] = [];
    for (const a of attachments) {
      if ((await attach(ctx, guest, a.spec)).changed) restored.push(a.ifname);
    }
    const remounted = await restoreMounts(ctx, guest);
    if (!restored.length && !remounted) return report('unchanged', 'all in place');
    return report('restored', `${restored.join(',') || 'no interface'}; ${remounted} mount(s)`);
  } catch (err) {
    return report('failed', describe(err));
  }
}

/** Every container the store has plumbing for. */
export function knownContainers(ctx: CoreContext): string[] {
  const ids = [
    ...listAttachments(ctx.store)
      .filter((a) => a.guestKind === 'docker')
      .map((a) => a.guestId),
    ...listMounts(ctx.store, { guestKind: 'docker' }).map((m) => m.guestId),
  ];
  return [...new Set(ids)];
}
