/** What the netlink path reports: kernel errors by errno name, and each step in iproute2's words for --verbose. */
import type { StepLog } from '../../util/log.js';

/** The errno name of a netlink error (EEXIST, ENODEV, ...), if it has one. */
export function errno(err: unknown): string | undefined {
  const e = err as { code?: unknown; errno?: unknown; message?: string };
  if (typeof e.code === 'string') return e.code;
  return /\b(E[A-Z]+)\b/.exec(e.message ?? '')?.[1];
}

/** Logs netlink steps as the `ip` commands that would do the same, which an operator can re-run. */
export function logAsIp(log: StepLog | undefined, cmds: string[][], netns?: string): void {
  for (const c of cmds) log?.step(`${netns ? `nsenter --net=${netns} ip ` : 'ip '}${c.join(' ')}  (netlink)`);
}
