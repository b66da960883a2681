/**
 * The only place that spawns host tools. Arguments go as an argv array (never through a shell);
 * every call is reported to the step log as the command line an operator could re-run.
 */
import { execa } from 'execa';
import type { StepLog } from './log.js';
import { silent } from './log.js';

export interface RunOptions {
  input?: string;
  log?: StepLog;
  /** Accept a non-zero exit and return it instead of throwing. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const log = opts.log ?? silent;
  log.step([file, ...args].join(' ') + (opts.input ? `  <<< ${opts.input.trim().split('\n').join(' ; ')}` : ''));
  const result = await execa(file, args, {
    input: opts.input,
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    stripFinalNewline: true,
  });
  const exitCode = result.exitCode ?? -1;
  if (exitCode !== 0 && !opts.allowFailure) {
    const reason = (result.stderr || result.stdout || result.shortMessage || '').trim().split('\n')[0];
    throw new Error(`${file} ${args.slice(0, 3).join(' ')}: ${reason || `exit ${exitCode}`}`);
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode };
}
