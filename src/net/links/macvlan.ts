/**
 * macvlan: a child of an Ethernet NIC, born inside the guest. Also the host's own "shim" macvlan on
 * the parent: the kernel isolates a parent from its children, so the host needs one to reach them.
 */
import type { IpConfig } from '../../model/address.js';
import type { AttachmentPlan } from '../../model/attachment.js';
import { UsageError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { addressWords, setHostAddress } from '../addresses/addresses.js';
import { logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { ifla, macvlanLinkInfo } from '../rtnetlink/attrs.js';
import { createFinishedLink, hostIndex, newLink } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';
import { checkParent, childWords, createChild, isNic, removeChild, type ChildType } from './child.js';
import type { LinkDriver } from './driver.js';

export const macvlan: LinkDriver = {
  kind: 'macvlan',
  onBridge: false,
  takesShim: true,
  serves: isNic,
  plan(host) {
    if (!host) throw new UsageError('a macvlan needs an existing parent interface');
    return { mtu: host.mtu, hostEnd: false };
  },
  describe: (plan, netns) => [childWords(plan, netns, macvlanType(plan))],
  create: (plan, netnsPath, log) => createChild(plan, netnsPath, macvlanType(plan), log),
  remove: removeChild,
  check: checkParent,
};

function macvlanType(plan: AttachmentPlan): ChildType {
  const mode = plan.macvlanMode ?? 'bridge';
  return { words: ['macvlan', 'mode', mode], info: macvlanLinkInfo(mode), ownMac: true, config: 'CONFIG_MACVLAN' };
}

export function createShimWords(parent: string, shim: string, address: IpConfig): IpWords[] {
  return [
    ['link', 'add', 'link', parent, 'name', shim, 'type', 'macvlan', 'mode', 'bridge'],
    addressWords(address, shim),
    ['link', 'set', shim, 'up'],
  ];
}

/** The host's own macvlan on a parent (bridge mode), with an address; nothing is left if a step fails. */
export async function createShim(parent: string, shim: string, address: IpConfig, log?: StepLog): Promise<void> {
  logAsIp(log, createShimWords(parent, shim, address));
  await createFinishedLink(
    shim,
    () => newLink(hostSocket(), shim, [ifla.ifname(shim), ifla.link(hostIndex(parent)), macvlanLinkInfo('bridge')]),
    () => setHostAddress(shim, address),
  );
}
