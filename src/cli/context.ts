/**
 * What every CLI command shares besides its context (../frontend/context.ts): its options merged
 * with the program's, output in human or --json form, and turning errors into one line on stderr
 * with the right exit code.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from '../frontend/context.js';
import { isControl, printable } from '../model/validate.js';
import { PipewrightError, describe } from '../util/errors.js';

/** Options of the command merged with the program's (commander keeps them apart). */
export function optionsOf<T>(cmd: Command): T & GlobalOptions {
  return cmd.optsWithGlobals() as T & GlobalOptions;
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
  process.stderr.write(`pipewright: ${oneLine(err instanceof PipewrightError ? err.message : describe(err))}\n`);
  if (process.env.PIPEWRIGHT_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exit(code);
}

/** An error is one line whatever it quotes: control characters in echoed input are shown escaped. */
export function oneLine(text: string): string {
  return [...text.trim()].map((c) => (isControl(c) ? printable(c) : c)).join('');
}
