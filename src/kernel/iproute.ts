/**
 * iproute2 where a tool is the right interface: reading a link with its addresses for ls/inspect
 * (`ip -json`), and the `route`/`rule` passthrough in pipework's words. Changes go through
 * netlink (src/kernel).
 */
import { run } from '../util/exec.js';
import type { StepLog } from '../util/log.js';

/** Where a command runs: the host's network namespace, or the one at this path. */
export type NetnsPath = string | undefined;

function inNetns(netns: NetnsPath, args: string[]): [string, string[]] {
  return netns ? ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]] : ['ip', args];
}

/** Runs one `ip` command given as argv (the pipework `route`/`rule` passthrough). */
export async function ipCommand(args: string[], netns: NetnsPath, log?: StepLog): Promise<string> {
  const [file, argv] = inNetns(netns, args);
  return (await run(file, argv, { log })).stdout;
}

export interface LinkState {
  ifname: string;
  ifindex: number;
  kind?: string;
  master?: string;
  mtu: number;
  mac: string;
  up: boolean;
  addresses: string[];
}

interface IpJsonLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address?: string;
  master?: string;
  flags?: string[];
  linkinfo?: { info_kind?: string };
  addr_info?: { local: string; prefixlen: number; scope?: string }[];
}

/** The link and its addresses, or null when no such interface exists in that namespace. */
export async function readLink(name: string, netns: NetnsPath): Promise<LinkState | null> {
  const [file, args] = inNetns(netns, ['-json', '-details', 'address', 'show', 'dev', name]);
  const res = await run(file, args, { allowFailure: true });
  if (res.exitCode !== 0) {
    if (/does not exist|Cannot find device/i.test(res.stderr)) return null;
    throw new Error(`reading ${name}: ${res.stderr.trim() || `exit ${res.exitCode}`}`);
  }
  const [link] = JSON.parse(res.stdout) as IpJsonLink[];
  return link ? toLinkState(link) : null;
}

/** Every link of a namespace (used to find an interface by MAC, and by gc). */
export async function readLinks(netns: NetnsPath): Promise<LinkState[]> {
  const [file, args] = inNetns(netns, ['-json', '-details', 'address', 'show']);
  const res = await run(file, args);
  return (JSON.parse(res.stdout) as IpJsonLink[]).map(toLinkState);
}

function toLinkState(link: IpJsonLink): LinkState {
  return {
    ifname: link.ifname,
    ifindex: link.ifindex,
    kind: link.linkinfo?.info_kind,
    master: link.master,
    mtu: link.mtu,
    mac: link.address ?? '',
    up: (link.flags ?? []).includes('UP'),
    addresses: (link.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`),
  };
}
