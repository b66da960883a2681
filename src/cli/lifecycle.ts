/** run / watch: containers started with their plumbing, and kept plumbed across restarts. */
import type { Command } from 'commander';
import { attachmentJson } from './attach.js';
import { withContext } from '../frontend/context.js';
import { collect, optionsOf, printJson } from './context.js';
import { logLines } from './log-lines.js';
import { runWithOwnHashSeed } from './own-seed.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('docker run with --net=none, then attach networks and mount volumes; on any failure nothing is left')
    .option(
      '--network <br|if[:ip/len|:pool:name]>',
      'an interface on this bridge or NIC (repeatable: eth0, eth1, ...)',
      collect,
      [],
    )
    .option('-p, --publish <spec>', 'publish a port on the first network, as docker run -p (repeatable)', collect, [])
    .option(
      '-v, --volume <name|path:path[:ro]>',
      'a named volume or host path, passed to Docker as --mount (repeatable)',
      collect,
      [],
    )
    .option('--json', 'print the whole result as JSON')
    .argument('<docker-args...>', 'after --: the docker run arguments (image, command, --name, ...)')
    .addHelpText(
      'after',
      `
Example:
  pipewright run --network br-lan -p 8080:80 -v data:/data -- --name web busybox httpd -f -p 80
  (br-lan is a pipewright network, so the address comes from its pool)`,
    )
    .action(async (dockerArgs: string[], _o, cmd: Command) => {
      const o = optionsOf<{ network: string[]; publish: string[]; volume: string[] }>(cmd);
      const { runContainer } = await import('../lifecycle/run.js');
      await withContext(o, async (ctx) => {
        const res = await runContainer(ctx, { networks: o.network, publish: o.publish, volumes: o.volume, dockerArgs });
        if (ctx.json)
          printJson({
            id: res.containerId,
            name: res.name,
            attachments: res.attachments.map((a) => attachmentJson(a)),
          });
        else process.stdout.write(`${res.containerId}\n`);
      });
    });

  program
    .command('apply')
    .description("reconcile the host to a file of pools, networks, volumes and containers' plumbing")
    .requiredOption('-f, --file <file>', 'YAML or JSON (schema: schema/apply.schema.json)')
    .option('--dry-run', 'print the plan, change nothing')
    .option('--prune', 'also remove what the file no longer names')
    .option('--json', 'print the plan as JSON')
    .addHelpText('after', '\nExample:\n  pipewright apply -f host.yaml --dry-run && pipewright apply -f host.yaml')
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ file: string; dryRun?: boolean; prune?: boolean }>(cmd);
      const { planApply } = await import('../lifecycle/apply.js');
      await withContext(o, async (ctx) => {
        const plan = await planApply(ctx, o.file, o.prune);
        if (!o.dryRun) {
          for (const [i, a] of plan.entries()) {
            // Progress for long plans, on a terminal only (scripts read stdout).
            if (process.stderr.isTTY)
              process.stderr.write(`\r[${i + 1}/${plan.length}] ${a.description}`.padEnd(80).slice(0, 80));
            await a.run();
          }
          if (process.stderr.isTTY && plan.length) process.stderr.write('\r'.padEnd(81) + '\r');
        }
        if (ctx.json) return printJson({ dryRun: Boolean(o.dryRun), changes: plan.map((a) => a.description) });
        if (plan.length === 0) process.stdout.write('no changes\n');
        for (const a of plan) process.stdout.write(`${o.dryRun ? 'would ' : ''}${a.description}\n`);
      });
    });

  program
    .command('watch')
    .description('keep Docker containers plumbed: restore after restarts, clean up after removal (foreground daemon)')
    .option('--log-format <json|text>', 'one JSON object per line, or human text', 'text')
    .addHelpText(
      'after',
      '\nExample:\n  pipewright watch --log-format json    (see scripts/pipewright-watch.service for systemd)',
    )
    .action(async (_o, cmd: Command) => {
      const o = optionsOf<{ logFormat: string }>(cmd);
      const line = logLines(o.logFormat);
      runWithOwnHashSeed();
      const { watch } = await import('../lifecycle/watch.js');
      const abort = new AbortController();
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort.abort());
      await withContext(o, (ctx) =>
        watch(ctx, { signal: abort.signal, onEvent: (e) => line(e, `${e.event}: ${e.message}`) }),
      );
    });
}
