/**
 * What attach and detach do, loaded once one of them runs: the one lazy-load point of each
 * (attach.ts declares the commands, their options and help).
 */
import { detachAttachment } from '../ops/detach.js';
import { attach } from '../ops/attach.js';
import { checkAttachSpec } from '../model/attachment.js';
import { dockerSocket, withContext, type GlobalOptions } from '../frontend/context.js';
import { resolveGuest } from '../runtime/guest.js';
import { PipewrightError } from '../util/errors.js';
import { attachmentJson, type AttachOpts } from './attach.js';
import { printJson } from './context.js';
import { findRecordsForGuest } from './guest-records.js';
import { waitOnCallingThread } from '../net/rtnetlink/sockets.js';

export async function runAttach(
  hostIf: string,
  guestSpec: string,
  addresses: string[],
  opts: AttachOpts & GlobalOptions,
) {
  // One operation in this process: its netlink requests wait on this thread (no thread pool).
  waitOnCallingThread();
  const { ipvlan, ...rest } = opts;
  const ipvlanMode = ipvlan === true ? 'l2' : ipvlan;
  const spec = checkAttachSpec({
    hostIf,
    addresses,
    ...rest,
    ipvlanMode,
    routes: opts.route,
    publish: opts.publish,
  });
  const guest = await resolveGuest(guestSpec, dockerSocket());
  await withContext(opts, async (ctx) => {
    const res = await attach(ctx, guest, spec);
    if (ctx.json) printJson(attachmentJson(res.attachment, { changed: res.changed }));
    else if (!res.changed) process.stdout.write(`${guest.name}: ${spec.ifname} already attached, nothing changed\n`);
    else
      process.stdout.write(
        `${guest.name}: ${res.attachment.ifname} attached to ${hostIf} (${res.attachment.hostLink ?? res.attachment.kind})\n`,
      );
  });
}

/** Its netlink requests wait on the thread pool: the link's delete (an RCU wait) must not hold the thread that starts the firewall's write alongside it. */
export async function runDetach(guestSpec: string, opts: { ifname?: string } & GlobalOptions) {
  await withContext(opts, async (ctx) => {
    const recs = (await findRecordsForGuest(ctx, guestSpec)).filter((r) => !opts.ifname || r.ifname === opts.ifname);
    if (recs.length === 0)
      throw new PipewrightError(
        `pipewright has no attachment for ${guestSpec}${opts.ifname ? ` -i ${opts.ifname}` : ''} (see 'pipewright ls')`,
      );
    for (const r of recs) await detachAttachment(ctx, r);
    if (ctx.json) printJson(recs.map((r) => attachmentJson(r)));
    else for (const r of recs) process.stdout.write(`${r.guestName}: ${r.ifname} detached from ${r.hostIf}\n`);
  });
}
