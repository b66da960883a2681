/**
 * Runs a host tool to completion (iptables-restore, nft, ip, mount, docker...). Arguments go as an
 * argv array (never through a shell); every call is reported to the step log as the command line an
 * operator could re-run. Tools are looked up in TOOL_PATH only. (The one long-lived child, the DHCP
 * client, is spawned detached by net/dhcp/dhcp-client.ts.)
 *
 * Built on node:child_process rather than execa: execa's import alone costs ~70 ms per CLI start
 * on the reference machine (bare Node starts in ~20 ms), and the few features used here (argv,
 * stdin text, timeout, exit code) are a dozen lines.
 */
import { spawn } from 'node:child_process';
import type { StepLog } from './log.js';
import { silent } from './log.js';
import { TOOL_PATH } from './paths.js';

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

function spawnCollect(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const env = { ...process.env, PATH: TOOL_PATH };
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env, timeout: opts.timeoutMs ?? 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => resolve({ stdout, stderr: `${file}: ${err.message}`, exitCode: -1 }));
    child.on('close', (code, signal) =>
      resolve({
        stdout: stdout.replace(/\n$/, ''),
        stderr: signal ? `${stderr}killed by ${signal}` : stderr,
        exitCode: code ?? -1,
      }),
    );
    child.stdin.on('error', () => {}); // a tool that exits early closes its stdin; its exit code tells
    child.stdin.end(opts.input ?? '');
  });
}

export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const log = opts.log ?? silent;
  log.step([file, ...args].join(' ') + (opts.input ? `  <<< ${opts.input.trim().split('\n').join(' ; ')}` : ''));
  const result = await spawnCollect(file, args, opts);
  if (result.exitCode !== 0 && !opts.allowFailure) throw toolFailure(file, args, result);
  return result;
}

/** A failed tool's error, on one line: its command (the first `words` arguments) and its own words. */
export function toolFailure(file: string, args: string[], result: RunResult, words = 3): Error {
  const said = toolMessage(result.stderr || result.stdout) || `exit ${result.exitCode}`;
  return new Error(`${file} ${args.slice(0, words).join(' ')}: ${said}`);
}

/**
 * A failed tool's own words on one line. Some tools open with a banner that says nothing
 * ("iptables-restore v1.8.9 (nf_tables):"); the lines after it do: they are joined, not dropped.
 */
export function toolMessage(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const banner = /^\S+ v\d+(\.\d+)*( \([^)]*\))?:$/;
  return lines
    .filter((l) => !banner.test(l))
    .slice(0, 3)
    .join('; ')
    .slice(0, 400);
}
