/**
 * pipewright as a netavark plugin (netavark's plugin-API.md): `create`, `setup <netns>`,
 * `teardown <netns>` and `info`, JSON on stdin and stdout; an error is `{"error": "<one line>"}`
 * on stdout and exit 1. The executable netavark runs is dist/netavark-plugin/pipewright, which
 * runs the CLI with --netavark-plugin first. See commands.ts for what each does to the host.
 */
import { withContext } from '../frontend/context.js';
import { describe, UsageError } from '../util/errors.js';
import { API_VERSION, create, setup, teardown } from './commands.js';
import { checkNetworkConfig } from './network.js';
import { parseExec, parseNetwork } from './types.js';
import { readStdin } from '../util/stdin.js';

/** The flag the plugin's launcher puts first: the rest of the command line is netavark's. */
export const NETAVARK_FLAG = '--netavark-plugin';

/** The store a network names (-o state_dir=, -o store=), else the CLI's defaults. */
const placeOf = (o: Record<string, string> | null | undefined) => ({ stateDir: o?.state_dir, store: o?.store });

async function answer(args: string[], version: string, input: () => Promise<string>): Promise<object | null> {
  const [command, netns] = args;
  if (command === undefined || command === 'info') return { version, api_version: API_VERSION };
  if (command === 'create') return create(parseNetwork(await input()));
  if (command !== 'setup' && command !== 'teardown')
    throw new UsageError(
      `unknown subcommand ${JSON.stringify(command).slice(0, 40)}: give create, setup, teardown or info`,
    );
  if (!netns || !netns.startsWith('/')) throw new UsageError(`${command} needs the container's netns path`);
  const exec = parseExec(await input());
  // The network's options are checked before its store is opened (made, chmod-ed) on the host.
  checkNetworkConfig(exec.network);
  return withContext(placeOf(exec.network.options), async (ctx) =>
    command === 'setup' ? setup(ctx, netns, exec) : (await teardown(ctx, netns, exec), null),
  );
}

/** One plugin call: netavark's arguments in, the exit code out (the answer written to stdout). */
export async function runNetavark(args: string[], version: string): Promise<number> {
  try {
    const out = await answer(args, version, readStdin);
    if (out) process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: describe(err).replace(/\s*\n\s*/g, ' ') })}\n`);
    return 1;
  }
}
