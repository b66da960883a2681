/** The link drivers, and which one serves a spec on a host interface. */
import type { AttachSpec, LinkKind } from '../../model/attachment.js';
import { PipewrightError } from '../../util/errors.js';
import { hostLinkInfo, type HostLinkInfo } from '../link-state/sysfs.js';
import type { LinkDriver } from './driver.js';
import { dummy } from './dummy.js';
import { ipvlan } from './ipvlan.js';
import { macvlan } from './macvlan.js';
import { phys } from './phys.js';
import { veth } from './veth.js';
import { hostVlanToBe, vlan } from './vlan.js';

export { NO_IDENTITY, type LinkDriver, type LinkIdentity, type LinkRef } from './driver.js';

/**
 * In the order they are asked: a kind chosen by hand (no host side, a move, a VLAN, an ipvlan)
 * first, then by what the host interface is.
 */
const DRIVERS: LinkDriver[] = [dummy, phys, vlan, ipvlan, veth, macvlan];

export function driverFor(kind: LinkKind): LinkDriver {
  return DRIVERS.find((d) => d.kind === kind)!;
}

/**
 * The driver for the spec's host interface: a bridge (or none yet) gives a veth, an Ethernet NIC a
 * macvlan; a missing `<nic>.<id>` of a NIC is that NIC's VLAN interface to be (see hostVlanToBe).
 */
export function chooseDriver(spec: AttachSpec): { driver: LinkDriver; host: HostLinkInfo | null } {
  const host = hostLinkInfo(spec.hostIf) ?? (spec.directPhys ? null : (hostVlanToBe(spec.hostIf)?.host ?? null));
  const driver = DRIVERS.find((d) => d.serves(host, spec));
  if (!driver) {
    throw new PipewrightError(
      `host interface ${spec.hostIf} is not an Ethernet NIC (link type ${host?.type}); attach to a bridge or an Ethernet interface`,
    );
  }
  return { driver, host };
}
