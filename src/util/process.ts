/** Processes by PID: alive, and the start time that tells a live PID from a reused one. */
import { readFileSync } from 'node:fs';

/** The process start time (clock ticks since boot), or null when no such process runs. */
export function pidStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process as recorded: its pid and start time (null in records of older versions). */
export interface ProcessRef {
  pid: number;
  start: string | null;
}

/** The process as it runs now at `pid`. */
export function processRef(pid: number): ProcessRef {
  return { pid, start: pidStartTime(pid) };
}

/** Whether the recorded process still runs: the same pid with the same start time (a pid alone for older records). */
export function sameProcess(p: ProcessRef): boolean {
  return p.start ? pidStartTime(p.pid) === p.start : processAlive(p.pid);
}
