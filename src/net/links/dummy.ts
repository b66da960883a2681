/**
 * dummy: an interface with no peer and no host side, born inside the guest (as the CNI dummy plugin
 * makes it). The guest holds its addresses as its own: a service address that routers send to the
 * guest over its other interfaces, a stable source address. Nothing leaves through it.
 */
import { existsSync } from 'node:fs';
import { NO_HOST_IF, type AttachmentPlan } from '../../model/attachment.js';
import { run } from '../../util/exec.js';
import type { StepLog } from '../../util/log.js';
import { logAsIp, type IpWords } from '../rtnetlink/ip-words.js';
import { ifla, kindLinkInfo } from '../rtnetlink/attrs.js';
import { indexIn, newLink } from '../rtnetlink/rtnl.js';
import { withNetnsSocket } from '../rtnetlink/sockets.js';
import type { LinkDriver } from './driver.js';
import { deleteInGuest } from './in-guest.js';
import { unlessKernelLacks } from './kernel-lacks.js';

/** The kernel's own default for a dummy. */
const DEFAULT_MTU = 1500;

/**
 * The kernel loads the dummy module at the first dummy by itself, and the module then makes a
 * dummy0 in the host's namespace (its numdummies is 1 by default): loaded first with none, the host
 * gets no interface it did not ask for. Where modprobe fails (built in, no such module), the
 * kernel's own answer follows at create.
 */
async function loadModule(log?: StepLog): Promise<void> {
  if (!existsSync('/sys/module/dummy')) await run('modprobe', ['dummy', 'numdummies=0'], { log, allowFailure: true });
}

const createWords = (plan: AttachmentPlan): IpWords => [
  'link',
  'add',
  'name',
  plan.ifname,
  'mtu',
  String(plan.mtu),
  'address',
  plan.mac,
  'type',
  'dummy',
];

export const dummy: LinkDriver = {
  kind: 'dummy',
  onBridge: false,
  takesShim: false,
  serves: (_host, spec) => spec.hostIf === NO_HOST_IF,
  plan: () => ({ mtu: DEFAULT_MTU, hostEnd: false }),
  describe: (plan) => [createWords(plan)],
  /** Made by a socket inside the guest: the name is looked up there, on every kernel. */
  async create(plan, netnsPath, log) {
    await loadModule(log);
    logAsIp(log, [createWords(plan)], netnsPath);
    return withNetnsSocket(netnsPath, async (sock) => {
      await newLink(sock, plan.ifname, [
        ifla.ifname(plan.ifname),
        ifla.mtu(plan.mtu),
        ifla.address(plan.mac),
        kindLinkInfo('dummy'),
      ]);
      return { linkIndex: await indexIn(sock, plan.ifname), linkPerm: null };
    }).catch(unlessKernelLacks('dummy', 'CONFIG_DUMMY'));
  },
  remove: deleteInGuest,
  /** Nothing on the host side to go wrong. */
  check: () => null,
};
