/**
 * vlan: the NIC's 802.1q VLAN interface itself, born inside the guest (as the CNI vlan plugin
 * does): the guest's frames leave the parent tagged. The kernel allows one such link per VLAN id
 * on a parent, so one guest per id; several guests on one VLAN take macvlans of a host VLAN
 * interface (`ip link add link eth1 name eth1.10 type vlan id 10`).
 */
import type { AttachmentPlan } from '../../model/attachment.js';
import { PipewrightError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { logAsIp } from '../rtnetlink/ip-words.js';
import { ifla, vlanLinkInfo } from '../rtnetlink/attrs.js';
import { errno } from '../rtnetlink/errno.js';
import { createFinishedLink, hostIndex, newLink, setLink } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';
import { splitVlanName } from '../../model/host-names.js';
import { checkVlanId } from '../../model/validate.js';
import { hostLinkInfo, type HostLinkInfo } from '../link-state/sysfs.js';
import { checkParent, childWords, createChild, isNic, parentDefaults, removeChild, type ChildType } from './child.js';
import { unlessKernelLacks } from './kernel-lacks.js';
import type { LinkDriver } from './driver.js';

export const vlan: LinkDriver = {
  kind: 'vlan',
  onBridge: false,
  takesShim: false,
  serves: (_host, spec) => spec.vlan !== null && spec.vlan !== undefined,
  plan(host, spec) {
    return { mtu: parentDefaults(host, spec.hostIf, '802.1q VLAN').mtu, hostEnd: false };
  },
  describe: (plan, netns) => [childWords(plan, netns, vlanType(plan))],
  create: (plan, netnsPath, log) =>
    createChild(plan, netnsPath, vlanType(plan), log).catch((err: unknown) => {
      // Of the kernel's two EEXISTs here, its extended ack names this one (the other: the name in the guest).
      if (errno(err) !== 'EEXIST' || !/VLAN device already exists/.test((err as Error).message)) throw err;
      throw new PipewrightError(
        `VLAN ${plan.vlan} of ${plan.hostIf} is taken (the kernel allows one link per VLAN id on a parent); detach the guest that has it, or use another id`,
      );
    }),
  remove: removeChild,
  check: checkParent,
};

function vlanType(plan: AttachmentPlan): ChildType {
  return {
    words: ['vlan', 'id', String(plan.vlan)],
    info: vlanLinkInfo(plan.vlan!),
    ownMac: true,
    config: 'CONFIG_VLAN_8021Q',
  };
}

/**
 * A missing `<nic>.<id>` of an Ethernet NIC: that NIC's VLAN interface to be, made by the attach
 * (as Docker makes parent=eth1.10, and pipework's eth1 @10), the parent of the guest's link; it
 * has the NIC's MTU and MAC. Null for any other name.
 */
export function hostVlanToBe(name: string): { nic: string; id: number; host: HostLinkInfo } | null {
  const dotted = splitVlanName(name);
  const host = dotted && hostLinkInfo(dotted.nic);
  return dotted && isNic(host) ? { nic: dotted.nic, id: checkVlanId(dotted.id), host: host! } : null;
}

/** A VLAN interface on the host, up: the parent of macvlan links; nothing is left if a step fails. */
export async function createHostVlan(nic: string, id: number, name: string, log?: StepLog): Promise<void> {
  logAsIp(log, [
    ['link', 'add', 'link', nic, 'name', name, 'type', 'vlan', 'id', String(id)],
    ['link', 'set', name, 'up'],
  ]);
  const sock = hostSocket();
  await createFinishedLink(
    name,
    () =>
      newLink(sock, name, [ifla.ifname(name), ifla.link(hostIndex(nic)), vlanLinkInfo(id)]).catch(
        unlessKernelLacks('vlan', 'CONFIG_VLAN_8021Q'),
      ),
    () => setLink(sock, hostIndex(name), [], true),
  );
}
