/**
 * detach: undo an attachment from its record, whether or not the guest still exists. The last
 * guest to leave a bridge takes its FORWARD accept with it, and a bridge pipewright created goes
 * too once nothing else is plugged into it.
 */
import type { StepLog } from '../log.js';
import { silent } from '../log.js';
import * as records from '../store/attachments.js';
import type { AttachmentRecord } from '../store/attachments.js';
import type { Store } from '../store/store.js';
import { existsSync, readdirSync } from 'node:fs';
import { stopDhcpClient } from './dhcp.js';
import { removeBridgeForwarding } from './firewall/forward.js';
import { ipBatch, readLink } from './iproute.js';
import { deleteLinkCmd } from './plumbing.js';
import { shimName } from './names.js';
import { hostLinkExists } from './sysfs.js';

interface Ctx {
  store: Store;
  log?: StepLog;
}

/** Removes the kernel side of one attachment (what is still there), then its record. */
export async function releaseAttachment(ctx: Ctx, rec: AttachmentRecord): Promise<void> {
  const log = ctx.log ?? silent;
  if (rec.dhcpPid) stopDhcpClient(rec.dhcpPid);
  if (rec.kind === 'veth' && rec.hostLink && hostLinkExists(rec.hostLink)) {
    await ipBatch([deleteLinkCmd(rec.hostLink)], undefined, log);
  }
  if (rec.kind === 'macvlan' && existsSync(rec.netnsPath) && (await readLink(rec.ifname, rec.netnsPath))) {
    await ipBatch([deleteLinkCmd(rec.ifname)], rec.netnsPath, log);
  }
  ctx.store.tx(() => records.deleteAttachment(ctx.store, rec.id));
  if (records.countOnHostIf(ctx.store, rec.hostIf) === 0) await releaseHostIf(ctx, rec, log);
}

/** The bridge's rule and a bridge pipewright made, or the parent's shim, go with the last guest. */
async function releaseHostIf(ctx: Ctx, rec: AttachmentRecord, log: StepLog): Promise<void> {
  if (rec.kind === 'veth') {
    await removeBridgeForwarding(rec.hostIf, log);
    if (!bridgeHasPorts(rec.hostIf)) await removeIfCreated(ctx, rec.hostIf, log);
  } else {
    await removeIfCreated(ctx, shimName(rec.hostIf), log);
  }
}

async function removeIfCreated(ctx: Ctx, name: string, log: StepLog): Promise<void> {
  if (!records.createdHostLink(ctx.store, name)) return;
  if (hostLinkExists(name)) await ipBatch([deleteLinkCmd(name)], undefined, log);
  ctx.store.tx(() => records.forgetHostLink(ctx.store, name));
}

/** Something else (a user's own veth, a shim) still plugged into the bridge keeps it alive. */
function bridgeHasPorts(bridge: string): boolean {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) && readdirSync(dir).length > 0;
}
