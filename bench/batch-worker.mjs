// Attaches COUNT guests through pipewright's library in this one process and reports the time per
// guest and the process's peak RSS. Run by bench/run.mjs as its own process, so RSS is its own.
// Args: <state-dir> <host-if> <guest-set> <count> <pool>
import { performance } from 'node:perf_hooks';
import { Store } from '../dist/store/store.js';
import { attach } from '../dist/ops/attach.js';
import { parseAttachText } from '../dist/model/attachment.js';
import { resolveGuest } from '../dist/runtime/guest.js';
import { guestName } from './lib.mjs';

const [stateDir, hostIf, set, count, pool] = process.argv.slice(2);
const store = Store.open(stateDir);
const ctx = { store };
const req = parseAttachText({ hostIf, addresses: [`pool:${pool}`] });
const t0 = performance.now();
for (let i = 0; i < Number(count); i++) await attach(ctx, await resolveGuest(`netns:${guestName(set, i)}`), req);
const totalMs = performance.now() - t0;
store.close();
process.stdout.write(JSON.stringify({ totalMs, perGuestMs: totalMs / Number(count), maxRssMb: process.resourceUsage().maxRSS / 1024 }));
