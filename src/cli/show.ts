/** ls / inspect: recorded attachments, each checked against the kernel (what each does: show-run.ts). */
import type { Command } from 'commander';
import { optionsOf } from './context.js';

/** Each command's one lazy load: what it does, with all it needs. */
const run = () => import('./show-run.js');

export function register(program: Command): void {
  program
    .command('ls')
    .description('list attachments from the store, checked against the kernel (stale ones are shown, not hidden)')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright ls --json | jq \'.[] | select(.status != "ok")\'')
    .action(async (_o, cmd: Command) => (await run()).listRun(optionsOf(cmd)));

  program
    .command('inspect')
    .description("show a guest's attachments: what was recorded and what the kernel has now")
    .argument('<guest>', 'as for attach')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExample:\n  pipewright inspect web --json')
    .action(async (guestSpec: string, _o, cmd: Command) => (await run()).inspectRun(guestSpec, optionsOf(cmd)));
}
