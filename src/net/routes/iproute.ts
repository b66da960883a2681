/**
 * iproute2 where a tool is the right interface: the `route`/`rule` passthrough in pipework's
 * words. Everything else goes over netlink (src/net/rtnetlink); reads in link-state.ts.
 */
import { run } from '../../util/exec.js';
import type { StepLog } from '../../util/log.js';
import type { NetnsPath } from '../link-state/link-state.js';

function inNetns(netns: NetnsPath, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]] : ['ip', args];
}

/** Runs one `ip` command given as argv (the pipework `route`/`rule` passthrough). */
export async function ipCommand(args: string[], netns: NetnsPath, log?: StepLog): Promise<string> {
  const [file, argv] = inNetns(netns, args);
  return (await run(file, argv, { log })).stdout;
}
