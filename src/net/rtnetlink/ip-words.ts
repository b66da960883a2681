/**
 * Kernel steps in iproute2's words. Changes go over netlink; `--verbose` prints each step as the
 * `ip` command that does the same, which an operator can read and re-run.
 */
import type { StepLog } from '../../util/log.js';

/** One `ip` command as argv, without the leading `ip`. */
export type IpWords = string[];

export function logAsIp(log: StepLog | undefined, cmds: IpWords[], netns?: string): void {
  for (const c of cmds) log?.step(`${netns ? `nsenter --net=${netns} ip ` : 'ip '}${c.join(' ')}  (netlink)`);
}

export function deleteLinkWords(name: string): IpWords {
  return ['link', 'delete', 'dev', name];
}
