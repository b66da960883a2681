/**
 * Bandwidth limits on the host end of a veth, with tc (spawned: see docs/attach.md, "Bandwidth
 * limits", for why not netlink). Traffic into the guest leaves the host end: a token bucket (tbf)
 * as its root qdisc shapes it. Traffic out of the guest enters the host end: its ingress qdisc
 * hands every packet (a u32 filter matching all) to an ifb with mirred, and the ifb's own tbf
 * shapes it. The ifb is the host's (made over netlink), identified by its recorded ifindex, name
 * and kind; the host end's qdiscs go with the link.
 */
import type { Limit } from '../../model/rate.js';
import { burstOf } from '../../model/rate.js';
import { run } from '../../util/exec.js';
import type { StepLog } from '../../util/log.js';
import { kindLinkInfo, ifla, IFLA, linkKind } from '../rtnetlink/attrs.js';
import { errno } from '../rtnetlink/errno.js';
import { logAsIp } from '../rtnetlink/ip-words.js';
import { createFinishedLink, delLink, getLink, linkName, newLink, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';

/** How much a bucket queues before it drops, as the CNI bandwidth plugin's 25 ms. */
const LATENCY = '25ms';
const INGRESS_HANDLE = 'ffff:';

const tc = (args: string[], log?: StepLog) => run('tc', args, { log });

/** The link's root qdisc becomes a token bucket of this limit (made or changed in place). */
export async function limitRoot(dev: string, l: Limit, log?: StepLog): Promise<void> {
  const bucket = ['rate', `${l.rate}bit`, 'burst', `${burstOf(l)}b`, 'latency', LATENCY];
  await tc(['qdisc', 'replace', 'dev', dev, 'root', 'tbf', ...bucket], log);
}

/** A tc deletion where nothing to delete (or no link any more) is no error. */
async function tcDelete(args: string[], log?: StepLog): Promise<void> {
  const r = await run('tc', args, { log, allowFailure: true });
  if (r.exitCode !== 0 && !/handle of zero|Invalid handle|No such file|Cannot find/.test(r.stderr))
    throw new Error(`tc ${args.join(' ')}: ${r.stderr.trim()}`);
}

/** The link's root qdisc back to its default (a link with none already, or gone, is no error). */
export const unlimitRoot = (dev: string, log?: StepLog) => tcDelete(['qdisc', 'del', 'dev', dev, 'root'], log);

/** Everything entering `dev` is redirected to the ifb (as its egress), where it is shaped. */
export async function redirectToIfb(dev: string, ifb: string, log?: StepLog): Promise<void> {
  await tc(['qdisc', 'add', 'dev', dev, 'handle', INGRESS_HANDLE, 'ingress'], log);
  const all = ['protocol', 'all', 'prio', '1', 'u32', 'match', 'u32', '0', '0'];
  await tc(
    [
      'filter',
      'add',
      'dev',
      dev,
      'parent',
      INGRESS_HANDLE,
      ...all,
      'action',
      'mirred',
      'egress',
      'redirect',
      'dev',
      ifb,
    ],
    log,
  );
}

/** The ingress qdisc and its filter off `dev` (a link without, or gone, is no error). */
export const stopRedirect = (dev: string, log?: StepLog) => tcDelete(['qdisc', 'del', 'dev', dev, 'ingress'], log);

/** Makes the ifb, up; its ifindex. One that could not come up is deleted again. */
export async function createIfb(name: string, log?: StepLog): Promise<number> {
  logAsIp(log, [
    ['link', 'add', 'name', name, 'type', 'ifb'],
    ['link', 'set', name, 'up'],
  ]);
  const sock = hostSocket();
  let index = 0;
  await createFinishedLink(
    name,
    () => newLink(sock, name, [ifla.ifname(name), kindLinkInfo('ifb')]),
    async () => {
      index = (await getLink(sock, name)).index;
      await setLink(sock, index, [], true);
    },
  );
  return index;
}

/** Whether the host link at `index` is still the ifb `name` pipewright made. */
export async function isOurIfb(name: string, index: number): Promise<boolean> {
  try {
    const l = await getLink(hostSocket(), index);
    return linkName(l) === name && linkKind(l.attrs.get(IFLA.LINKINFO)) === 'ifb';
  } catch (err) {
    if (errno(err) === 'ENODEV') return false;
    throw err;
  }
}

/**
 * Deletes the recorded ifb: by its index, and only while that index is still an ifb of that name
 * (else it is gone or not ours). An index never recorded (a crash between making and recording)
 * is looked up by the derived name, an ifb only.
 */
export async function removeIfb(name: string, index: number | null, log?: StepLog): Promise<void> {
  const sock = hostSocket();
  let at = index;
  if (at === null) {
    try {
      at = (await getLink(sock, name)).index;
    } catch (err) {
      if (errno(err) === 'ENODEV') return;
      throw err;
    }
  }
  if (!(await isOurIfb(name, at))) return;
  logAsIp(log, [['link', 'delete', 'dev', name]]);
  await delLink(sock, at).catch((err: unknown) => {
    if (errno(err) !== 'ENODEV') throw err;
  });
}
