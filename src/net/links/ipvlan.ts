/**
 * ipvlan: a child of an Ethernet NIC with the parent's MAC, born inside the guest. l2 switches
 * frames between the children, l3 and l3s route (no ARP, no broadcast; l3s through netfilter). For
 * NICs or switches that allow one MAC per port, where macvlan cannot go.
 */
import type { AttachmentPlan } from '../../model/attachment.js';
import { ipvlanLinkInfo } from '../rtnetlink/attrs.js';
import { checkParent, childWords, createChild, parentDefaults, removeChild, type ChildType } from './child.js';
import type { LinkDriver } from './driver.js';

export const ipvlan: LinkDriver = {
  kind: 'ipvlan',
  onBridge: false,
  takesShim: false,
  serves: (_host, spec) => spec.ipvlanMode !== null && spec.ipvlanMode !== undefined,
  plan(host, spec) {
    const parent = parentDefaults(host, spec.hostIf, 'ipvlan');
    return { mtu: parent.mtu, mac: parent.mac, hostEnd: false };
  },
  describe: (plan, netns) => [childWords(plan, netns, ipvlanType(plan))],
  create: (plan, netnsPath, log) => createChild(plan, netnsPath, ipvlanType(plan), log),
  remove: removeChild,
  check: checkParent,
};

function ipvlanType(plan: AttachmentPlan): ChildType {
  const mode = plan.ipvlanMode ?? 'l2';
  return { words: ['ipvlan', 'mode', mode], info: ipvlanLinkInfo(mode), ownMac: false, config: 'CONFIG_IPVLAN' };
}
