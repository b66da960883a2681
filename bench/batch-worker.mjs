// Attaches COUNT guests through pipewright's library in this one process, as a user's program
// would import it (the package's own entry), and reports the time per guest and the process's
// peak RSS. Run by bench/run.mjs as its own process, so RSS is its own.
// Args: <state-dir> <host-if> <guest-set> <count> <pool>
import { performance } from 'node:perf_hooks';
import { attach, checkAttachSpec, closeContext, openContext, resolveGuest } from 'pipewright';
import { guestName } from './lib.mjs';

const [stateDir, hostIf, set, count, pool] = process.argv.slice(2);
const ctx = await openContext({ stateDir });
const spec = checkAttachSpec({ hostIf, addresses: [`pool:${pool}`] });
const t0 = performance.now();
for (let i = 0; i < Number(count); i++)
  await attach(ctx, await resolveGuest(`netns:${guestName(set, i)}`, ctx.docker), spec);
const totalMs = performance.now() - t0;
await closeContext(ctx);
process.stdout.write(
  JSON.stringify({ totalMs, perGuestMs: totalMs / Number(count), maxRssMb: process.resourceUsage().maxRSS / 1024 }),
);
