/**
 * What the daemon command does, loaded once it runs: its one lazy-load point (daemon.ts declares
 * the command, checks its options and has its help).
 */
import { startCliWorkers } from '../daemon/cli-workers.js';
import { serveCni } from '../daemon/cni-socket.js';
import { startHealing } from '../daemon/heal.js';
import { ipamDriver } from '../daemon/ipam-driver.js';
import { networkDriver } from '../daemon/network-driver.js';
import { servePlugin } from '../daemon/server.js';
import { volumeDriver } from '../daemon/volume-driver.js';
import { withContext, type GlobalOptions } from '../frontend/context.js';
import { watch } from '../lifecycle/watch.js';
import type { CoreContext } from '../ops/context.js';
import { finishOrphanedEndpoints } from '../ops/endpoint.js';
import { undoGoneNamespaceGuests } from '../ops/gc.js';
import { describe } from '../util/errors.js';
import type { LogLine } from './log-lines.js';

export interface DaemonOpts extends GlobalOptions {
  socket: string;
  cniSocket: string;
  cliSocket: string;
  cliWorkers: string;
  logFormat: string;
  heal: boolean;
}

/** Self-healing (daemon/heal.ts), its repairs and failures as log lines. */
function startHealer(ctx: CoreContext, line: LogLine) {
  return startHealing(ctx, {
    healed: (e) => line(e, `healed ${e.healed} (${e.ms} ms)`),
    failed: (err) => line({ error: describe(err) }, `self-healing failed: ${describe(err)}; the next change retries`),
    note: (message) => line({ heal: message }, message),
  });
}

/** Serves until SIGINT or SIGTERM; `o` and `workers` as daemon.ts checked them. */
export async function runDaemon(o: DaemonOpts, workers: number, line: LogLine) {
  const abort = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort.abort());
  await withContext(o, async (ctx) => {
    for (const rec of await finishOrphanedEndpoints(ctx)) {
      line(
        { finished: rec.guestName },
        `finished removing endpoint ${rec.guestName} (a daemon before this one died doing it)`,
      );
    }
    const network = networkDriver(ctx, (err) =>
      line({ error: describe(err) }, `removing an endpoint failed: ${describe(err)}; gc finishes it`),
    );
    const drivers = {
      NetworkDriver: network.handlers,
      IpamDriver: ipamDriver(ctx.ipam),
      VolumeDriver: volumeDriver(ctx),
    };
    const logRequest = (e: { method: string; ms: number; err?: string }) =>
      line({ ...e, ms: Math.round(e.ms * 10) / 10 }, `${e.method} ${e.ms.toFixed(1)} ms${e.err ? `: ${e.err}` : ''}`);
    const servers = [await servePlugin(o.socket, drivers, logRequest)];
    if (o.cniSocket) servers.push(await serveCni(o.cniSocket, logRequest, { ctx, opts: o }));
    const cli =
      o.cliSocket &&
      startCliWorkers(o.cliSocket, workers, ctx.store.stateDir, (r) =>
        'declined' in r
          ? line(r, `a command declined (runs in its own process): ${r.declined}`)
          : line(r, `warm workers: ${r.stoppedStarting}`),
      );
    line(
      {
        listening: o.socket,
        ...(o.cniSocket ? { cni: o.cniSocket } : {}),
        ...(o.cliSocket ? { cli: o.cliSocket } : {}),
      },
      `listening on ${[o.socket, o.cniSocket && `${o.cniSocket} (CNI)`, o.cliSocket && `${o.cliSocket} (commands)`].filter(Boolean).join(', ')}`,
    );
    // After a reboot the namespaces of netns, pid and CNI guests are gone: their attachments and leases go too.
    const swept = undoGoneNamespaceGuests(ctx).then(
      (actions) =>
        actions.forEach((a) => line({ undone: a.target, reason: a.reason }, `undid ${a.target}: ${a.reason}`)),
      (err: unknown) =>
        line({ error: describe(err) }, `undoing the attachments of gone guests failed: ${describe(err)}; gc does it`),
    );
    const healer = o.heal ? await startHealer(ctx, line) : undefined;
    const watching = watch(ctx, { signal: abort.signal, onEvent: (e) => line(e, `${e.event}: ${e.message}`) });
    // Until SIGINT or SIGTERM: the socket goes with the daemon (a socket file without one only misleads Docker).
    await new Promise<void>((resolve) => {
      abort.signal.addEventListener('abort', () => {
        if (cli) cli.stop();
        let open = servers.length;
        for (const server of servers) {
          server.close(() => --open === 0 && resolve());
          server.closeAllConnections(); // Docker keeps its connections open
        }
      });
    });
    await healer?.stop();
    await watching;
    await swept;
    await network.settle();
  });
}
