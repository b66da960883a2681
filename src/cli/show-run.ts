/**
 * What ls and inspect do, loaded once one of them runs: the one lazy-load point of each (show.ts
 * declares the commands, their options and help).
 */
import { listAttachments } from '../db/attachments.js';
import { withContext, type GlobalOptions } from '../frontend/context.js';
import { checkAttachment } from '../ops/status.js';
import { PipewrightError } from '../util/errors.js';
import { attachmentJson } from './attach.js';
import { printJson, printTable } from './context.js';
import { findRecordsForGuest } from './guest-records.js';
import { waitOnCallingThread } from '../net/rtnetlink/sockets.js';

export async function listRun(opts: GlobalOptions) {
  // Alone in this process: its netlink requests wait on this thread (no thread pool).
  waitOnCallingThread();
  await withContext(opts, async (ctx) => {
    const rows = [];
    for (const rec of listAttachments(ctx.store)) {
      const st = await checkAttachment(ctx, rec);
      rows.push({ rec, st });
    }
    if (ctx.json) {
      printJson(
        rows.map(({ rec, st }) =>
          attachmentJson(rec, { status: st.status, reason: st.reason, liveAddresses: st.link?.addresses }),
        ),
      );
      return;
    }
    printTable(
      ['GUEST', 'IFNAME', 'HOST-IF', 'HOST-LINK', 'ADDRESSES', 'STATUS'],
      rows.map(({ rec, st }) => [
        rec.guestName,
        rec.ifname,
        rec.hostIf,
        rec.hostLink ?? `(${rec.kind})`,
        (st.link?.addresses ?? rec.spec.addresses).join(',') || (rec.spec.dhcp ? 'dhcp' : '-'),
        st.reason ? `${st.status}: ${st.reason}` : st.status,
      ]),
    );
  });
}

export async function inspectRun(guestSpec: string, opts: GlobalOptions) {
  waitOnCallingThread();
  await withContext(opts, async (ctx) => {
    const recs = await findRecordsForGuest(ctx, guestSpec);
    if (recs.length === 0)
      throw new PipewrightError(`pipewright has no attachment for ${guestSpec} (see 'pipewright ls')`);
    const out = [];
    for (const rec of recs) {
      const st = await checkAttachment(ctx, rec);
      out.push(
        attachmentJson(rec, {
          netns: rec.netnsPath,
          status: st.status,
          reason: st.reason,
          kernel: st.link ?? null,
        }),
      );
    }
    if (ctx.json) printJson(out);
    else process.stdout.write(out.map(humanInspect).join('\n'));
  });
}

/** The routes' metric and source-based routing, when the attachment has them. */
function routeNotes(a: { metric: number | null; sbr: boolean }): string {
  const notes = [a.metric === null ? '' : `metric ${a.metric}`, a.sbr ? 'source-based' : ''].filter(Boolean);
  return notes.length ? ` (${notes.join(', ')})` : '';
}

function humanInspect(
  a: ReturnType<typeof attachmentJson> & { status: string; reason?: string; netns: string; kernel: unknown },
): string {
  const lines = [
    `${a.guest.name} ${a.ifname} (${a.guest.kind} ${a.guest.id})`,
    `  link:      ${a.kind} on ${a.hostInterface}${a.hostLink ? ` via ${a.hostLink}` : ''}, mac ${a.mac}, mtu ${a.mtu}`,
    `  netns:     ${a.netns}`,
    `  addresses: ${a.addresses.join(' ') || (a.dhcp ? 'dhcp' : '-')}`,
    `  routes:    ${a.routes.join(' ') || '-'}${routeNotes(a)}`,
    ...(a.rate ? [`  rate:      ${a.rate} (into the guest/out of it)`] : []),
    `  status:    ${a.status}${a.reason ? ` (${a.reason})` : ''}`,
  ];
  const k = a.kernel as { addresses: string[]; up: boolean } | null;
  if (k) lines.push(`  kernel:    ${k.up ? 'up' : 'down'}, ${k.addresses.join(' ') || 'no addresses'}`);
  return lines.join('\n') + '\n';
}
