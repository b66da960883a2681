/**
 * Runs a host tool to completion (iptables-restore, nft, ip, mount, docker...). Arguments go as an
 * argv array (never through a shell); every call is reported to the step log as the command line an
 * operator could re-run. Tools are looked up in TOOL_PATH only. (The one long-lived child, the DHCP
 * client, is spawned detached by net/dhcp/dhcp-client.ts.)
 *
 * Hand-written rather than execa (whose import alone cost a CLI start ~70 ms, bare Node starting in
 * ~20 ms) and started by the addon's posix_spawn rather than node:child_process, which forks the
 * whole Node process and waits for the child's exec: 2.4 ms of an attach -p's main thread in a
 * CPU profile, for the one nft it runs; -1.5..2 ms per command with one tool, measured whole.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { PassThrough, type Writable } from 'node:stream';
import { syscalls } from './syscalls.js';
import type { StepLog } from './log.js';
import { silent } from './log.js';
import { TOOL_PATH, toolFile } from './paths.js';

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

/** A tool started, its output gathered until it ends. */
interface Running {
  stdin: Writable;
  kill(): void;
  result: Promise<RunResult>;
  /** It ended (before anything was fed to it, for a tool started early that died). */
  ended(): boolean;
}

/** All a pipe gives until its end (or its error), as text. */
function drained(fd: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    new Socket({ fd, readable: true, writable: false })
      .setEncoding('utf8')
      .on('data', (d: string) => (text += d))
      .on('error', () => {})
      .on('close', () => resolve(text));
  });
}

const failedToStart = (file: string, reason: string): Running => ({
  stdin: new PassThrough(),
  kill: () => {},
  result: Promise.resolve({ stdout: '', stderr: `${file}: ${reason}`, exitCode: -1 }),
  ended: () => true,
});

function launch(file: string, args: string[]): Running {
  const path = file.includes('/') ? file : toolFile(file);
  if (!path) return failedToStart(file, `spawn ${file} ENOENT`);
  let reaped = false;
  let settle!: (status: [number, number]) => void;
  const exited = new Promise<[number, number]>((resolve) => (settle = resolve));
  let fds: [number, number, number, number];
  try {
    fds = syscalls().spawnTool(path, [file, ...args], TOOL_PATH, (code, signal) => {
      reaped = true;
      settle([code, signal]);
    });
  } catch (err) {
    // The system's refusal (ENOENT, EACCES, EMFILE...) is the tool's failure; a TypeError is ours.
    if (!(err as NodeJS.ErrnoException).code) throw err;
    return failedToStart(file, (err as Error).message);
  }
  const [id, stdinFd, stdoutFd, stderrFd] = fds;
  const stdin = new Socket({ fd: stdinFd, readable: false, writable: true });
  stdin.on('error', () => {}); // a tool that exits early closes its stdin; its exit code tells
  const result = Promise.all([exited, drained(stdoutFd), drained(stderrFd)]).then(
    ([[code, signal], stdout, stderr]) => {
      stdin.destroy();
      return {
        stdout: stdout.replace(/\n$/, ''),
        stderr: signal ? `${stderr}killed by ${signalName(signal)}` : stderr,
        exitCode: code,
      };
    },
  );
  // Through its pidfd: once reaped, nothing (its pid may be another process's by then).
  return { stdin, kill: () => syscalls().signalTool(id, constants.signals.SIGTERM), result, ended: () => reaped };
}

const signalName = (n: number) => Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;

/** Gives a started tool its whole input; it is killed if it has not ended `timeoutMs` later. */
async function feed({ stdin, kill, result }: Running, opts: RunOptions): Promise<RunResult> {
  const timer = setTimeout(kill, opts.timeoutMs ?? 30_000);
  stdin.end(opts.input ?? '');
  try {
    return await result;
  } finally {
    clearTimeout(timer);
  }
}

/** Tools started ahead of their input (startEarly), by command line, not yet taken by a run(). */
const early = new Map<string, Running[]>();
const commandKey = (file: string, args: string[]) => [file, ...args].join('\0');

/**
 * Starts `file args` now, so that the next run() of the same command line finds it loaded: for a
 * tool that reads its whole input before it looks at anything (`nft -f -`), its start overlaps
 * the caller's work. Any run() of that line may take it (they are alike until fed: in the daemon,
 * another operation's), and waits for its end. Returns its release: a tool no run() took gets an
 * empty input, which it ends on, doing nothing; the release waits for that end.
 */
export function startEarly(file: string, args: string[]): () => Promise<void> {
  const key = commandKey(file, args);
  const running = launch(file, args);
  early.set(key, [...(early.get(key) ?? []), running]);
  return async () => {
    if (withdraw(key, running)) await feed(running, {});
  };
}

/**
 * Takes `which` (else the first still running) out of the tools started early for `key`:
 * undefined when none is there. One that died before it was fed is dropped, not taken.
 */
function withdraw(key: string, which?: Running): Running | undefined {
  const waiting = (early.get(key) ?? []).filter((r) => r === which || !r.ended());
  const taken = which ? waiting.find((r) => r === which) : waiting[0];
  const left = waiting.filter((r) => r !== taken);
  if (left.length) early.set(key, left);
  else early.delete(key);
  return taken;
}

export async function run(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const log = opts.log ?? silent;
  log.step([file, ...args].join(' ') + (opts.input ? `  <<< ${opts.input.trim().split('\n').join(' ; ')}` : ''));
  const result = await feed(withdraw(commandKey(file, args)) ?? launch(file, args), opts);
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
