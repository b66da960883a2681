/**
 * daemon: pipewright as Docker's network, IPAM and volume plugin on Docker's plugin socket, and
 * what `watch` does (--net=none containers kept plumbed across restarts), in one process.
 */
import type { Command } from 'commander';
import { hasControl, printable } from '../model/validate.js';
import { UsageError } from '../util/errors.js';
import { optionsOf } from './context.js';
import type { DaemonOpts } from './daemon-run.js';
import { logLines } from './log-lines.js';
import { runWithOwnHashSeed } from './own-seed.js';

const DEFAULT_CNI_SOCKET = '/run/pipewright/cni.sock';
const DEFAULT_CLI_SOCKET = '/run/pipewright/cli.sock';

export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/pipewright.sock';

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
      const o = optionsOf<DaemonOpts>(cmd);
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
      runWithOwnHashSeed();
      await (await import('./daemon-run.js')).runDaemon(o, workers, line);
    });
}
