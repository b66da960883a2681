/** What `pipewright ports` does (network.ts declares it): published ports, of one guest or all. */
import { listPorts } from '../db/networks.js';
import { withContext, type GlobalOptions } from '../frontend/context.js';
import { publishedAs } from '../ops/ports.js';
import { PipewrightError } from '../util/errors.js';
import { printJson, printTable } from './context.js';
import { findRecordsForGuest } from './guest-records.js';

export async function showPorts(guestSpec: string | undefined, opts: GlobalOptions): Promise<void> {
  await withContext(opts, async (ctx) => {
    const recs = guestSpec === undefined ? null : await findRecordsForGuest(ctx, guestSpec);
    if (recs?.length === 0)
      throw new PipewrightError(`pipewright has no attachment for ${guestSpec} (see 'pipewright ls')`);
    const ids = recs ? new Set(recs.map((r) => r.id)) : null;
    const ports = listPorts(ctx.store).filter((p) => !ids || ids.has(p.attachmentId));
    if (ctx.json) return printJson(ports.map((p) => ({ guest: p.guestName, publish: publishedAs(p), ...p })));
    printTable(
      ['GUEST', 'PUBLISH', 'CONTAINER', 'BRIDGE'],
      ports.map((p) => [
        p.guestName,
        publishedAs(p),
        `${p.ctrIp.includes(':') ? `[${p.ctrIp}]` : p.ctrIp}:${p.ctrPort}`,
        p.bridge,
      ]),
    );
  });
}
