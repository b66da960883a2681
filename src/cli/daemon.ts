/**
 * daemon: pipewright as Docker's network, IPAM and volume plugin on Docker's plugin socket, and
 * what `watch` does (--net=none containers kept plumbed across restarts), in one process.
 */
import type { Command } from 'commander';
import { hasControl, printable } from '../model/validate.js';
import { describe, UsageError } from '../util/errors.js';
import { withContext } from '../frontend/context.js';
import { optionsOf } from './context.js';
import { logLines, type LogLine } from './log-lines.js';
import type { CoreContext } from '../ops/context.js';

const DEFAULT_CNI_SOCKET = '/run/pipewright/cni.sock';
const DEFAULT_CLI_SOCKET = '/run/pipewright/cli.sock';

export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/pipewright.sock';

/** Self-healing (daemon/heal.ts), its repairs and failures as log lines. */
async function startHealer(ctx: CoreContext, line: LogLine) {
  const { startHealing } = await import('../daemon/heal.js');
  return startHealing(ctx, {
    healed: (e) => line(e, `healed ${e.healed} (${e.ms} ms)`),
    failed: (err) => line({ error: describe(err) }, `self-healing failed: ${describe(err)}; the next change retries`),
    note: (message) => line({ heal: message }, message),
  });
}

export function register(program: Command): void {
  program
    .command('daemon')
    .description(
      "serve Docker's plugin protocol: pipewright as Docker's network, IPAM and volume driver; and watch (foreground)",
    )
    .option(
      '--socket <path>',
      "the plugin socket; Docker names the driver after the file's base name",
      DEFAULT_PLUGIN_SOCKET,
    )
    .option(
      '--cni-socket <path>',
      "where the CNI plugin hands its calls to this daemon (no Node start per call); '' for none",
      DEFAULT_CNI_SOCKET,
    )
    .option(
      '--cli-socket <path>',
      "where pipewright commands find this daemon's warm workers (no Node start per command); '' for none",
      DEFAULT_CLI_SOCKET,
    )
    .option('--cli-workers <n>', 'warm workers kept waiting for commands (1-32)', '2')
    .option(
      '--no-heal',
      'do not put back the firewall rules, bridges and gateway addresses other programs remove (self-healing, on by default)',
    )
    .option('--log-format <json|text>', 'one line per request and event: JSON, or human text', 'text')
    .addHelpText(
      'after',
      '\nExamples:\n  pipewright daemon &\n' +
        '  docker network create -d pipewright --ipam-driver pipewright --subnet 10.20.0.0/24 lan\n' +
        '  docker run --rm --network lan --ip 10.20.0.5 -p 8080:80 busybox httpd -f -p 80\n' +
        '  docker network create --ipam-driver pipewright --ipam-opt pool=shared lan2\n' +
        '  docker volume create -d pipewright --opt size=1G data\n' +
        "  pipewright ls    # now run by one of the daemon's warm workers\n" +
        '  pipewright daemon --no-heal    # leave the firewall and bridges to another manager',
    )
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{
        socket: string;
        cniSocket: string;
        cliSocket: string;
        cliWorkers: string;
        logFormat: string;
        heal: boolean;
      }>(cmd);
      const line = logLines(o.logFormat);
      for (const [flag, path] of [
        ['--socket', o.socket],
        ['--cni-socket', o.cniSocket || '/'],
        ['--cli-socket', o.cliSocket || '/'],
      ]) {
        if (!path.startsWith('/') || hasControl(path))
          throw new UsageError(`${flag} "${printable(path)}" must be an absolute path without control characters`);
      }
      const workers = Number(o.cliWorkers);
      if (!/^\d+$/.test(o.cliWorkers) || workers < 1 || workers > 32)
        throw new UsageError(`--cli-workers "${printable(o.cliWorkers)}" must be a number from 1 to 32`);
      const { servePlugin } = await import('../daemon/server.js');
      const { ipamDriver } = await import('../daemon/ipam-driver.js');
      const { volumeDriver } = await import('../daemon/volume-driver.js');
      const { networkDriver } = await import('../daemon/network-driver.js');
      const { watch } = await import('../lifecycle/watch.js');
      const { serveCni } = await import('../daemon/cni-socket.js');
      const { startCliWorkers } = await import('../daemon/cli-workers.js');
      const abort = new AbortController();
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort.abort());
      await withContext(o, async (ctx) => {
        const { finishOrphanedEndpoints } = await import('../ops/endpoint.js');
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
          line(
            { ...e, ms: Math.round(e.ms * 10) / 10 },
            `${e.method} ${e.ms.toFixed(1)} ms${e.err ? `: ${e.err}` : ''}`,
          );
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
        const { undoGoneNamespaceGuests } = await import('../ops/gc.js');
        const swept = undoGoneNamespaceGuests(ctx).then(
          (actions) =>
            actions.forEach((a) => line({ undone: a.target, reason: a.reason }, `undid ${a.target}: ${a.reason}`)),
          (err: unknown) =>
            line(
              { error: describe(err) },
              `undoing the attachments of gone guests failed: ${describe(err)}; gc does it`,
            ),
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
    });
}
