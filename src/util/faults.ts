/**
 * A fault seam for the chaos suite. Every named step of an operation passes through here; nothing
 * happens unless a front end armed a fault (the CLI reads PIPEWRIGHT_FAULT=<step prefix>:<action>):
 *
 *   fail   the step throws instead of running (the operation's rollback must leave nothing)
 *   crash  the process is killed (SIGKILL) right after the step changed the host, before its
 *          inverse is registered or anything else is recorded (gc must finish or undo it)
 *   stop   the process stops itself (SIGSTOP) right after the step, until a test sends SIGCONT:
 *          a window held open for another process to run in (a race made certain)
 *
 * PIPEWRIGHT_FAULT_TRACE=<file> appends every step's name to the file, so the suite can learn a
 * command's steps and inject a fault at each.
 */
import { appendFileSync } from 'node:fs';
import { UsageError } from './errors.js';

export type FaultAction = 'crash' | 'fail' | 'stop';
const ACTIONS: readonly string[] = ['crash', 'fail', 'stop'];

let armed: { step: string; action: FaultAction } | null = null;
let trace: string | null = null;

export function armFaults(fault: string | undefined, traceFile: string | undefined): void {
  trace = traceFile || null;
  if (!fault) return;
  const colon = fault.lastIndexOf(':');
  const [step, action] = [fault.slice(0, colon), fault.slice(colon + 1)];
  if (colon <= 0 || !ACTIONS.includes(action))
    throw new UsageError(`PIPEWRIGHT_FAULT "${fault}" must be <step>:crash, <step>:fail or <step>:stop`);
  armed = { step, action: action as FaultAction };
}

const hits = (step: string, action: FaultAction) => armed?.action === action && step.startsWith(armed.step);

/** Before a step runs: traced, and failed if armed so. */
export function beforeStep(step: string): void {
  if (trace) appendFileSync(trace, `${step}\n`);
  if (hits(step, 'fail')) throw new Error(`injected fault at "${step}"`);
}

/** After a step changed the host: killed or stopped if armed so. */
export function afterStep(step: string): void {
  if (hits(step, 'crash')) process.kill(process.pid, 'SIGKILL');
  if (hits(step, 'stop')) process.kill(process.pid, 'SIGSTOP');
}

/** A named step outside an undo stack (detach, removals): the same seam. */
export async function namedStep<T>(step: string, fn: () => Promise<T> | T): Promise<T> {
  beforeStep(step);
  const result = await fn();
  afterStep(step);
  return result;
}
