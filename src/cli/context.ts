/**
 * What every command shares: global options, the store, the step log (--verbose), output in
 * human or --json form, and turning errors into one line on stderr with the right exit code.
 */
import type { Command } from 'commander';
import { PipewrightError, describe } from '../util/errors.js';
import { silent, stderrLog, type StepLog } from '../util/log.js';
import type { Store } from '../store/store.js';
import type { Ipam } from '../ipam/allocator.js';
import type { FirewallChoice } from '../firewall/sync.js';

export interface GlobalOptions {
  stateDir?: string;
  store?: string;
  firewall?: string;
  verbose?: boolean;
  json?: boolean;
}

export interface Context {
  store: Store;
  ipam: Ipam;
  firewall?: FirewallChoice;
  log: StepLog;
  json: boolean;
}

/** Options of the command merged with the program's (commander keeps them apart). */
export function optionsOf<T>(cmd: Command): T & GlobalOptions {
  return cmd.optsWithGlobals() as T & GlobalOptions;
}

/** Opens the store (lazily loading SQLite: commands that do not need it never pay for it). */
export async function openContext(opts: GlobalOptions): Promise<Context> {
  const { Store, stateDirFrom } = await import('../store/store.js');
  const { openIpam, storeSpecFrom } = await import('../ipam/open.js');
  const store = Store.open(stateDirFrom(opts.stateDir));
  try {
    const ipam = await openIpam(store, storeSpecFrom(opts.store));
    const { checkFirewallChoice } = await import('../firewall/sync.js');
    const firewall = checkFirewallChoice(opts.firewall ?? process.env.PIPEWRIGHT_FIREWALL ?? 'auto');
    return { store, ipam, firewall, log: opts.verbose ? stderrLog() : silent, json: Boolean(opts.json) };
  } catch (err) {
    store.close();
    throw err;
  }
}

/** Runs a command body with a context, closing the store afterwards. */
export async function withContext<T>(opts: GlobalOptions, body: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = await openContext(opts);
  try {
    return await body(ctx);
  } finally {
    await ctx.ipam.backend.close();
    ctx.store.close();
  }
}

/** commander's accumulator for repeatable options (--label a --label b). */
export const collect = (value: string, prev: string[]): string[] => [...prev, value];

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Prints rows as aligned columns under a header. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  process.stdout.write([line(header), ...rows.map(line)].join('\n') + '\n');
}

export function fail(err: unknown): never {
  const code = err instanceof PipewrightError ? err.exitCode : 1;
  process.stderr.write(`pipewright: ${err instanceof PipewrightError ? err.message : describe(err)}\n`);
  if (process.env.PIPEWRIGHT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(code);
}
