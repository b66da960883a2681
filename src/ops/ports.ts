/**
 * Publishing ports: the mapping is recorded (refusing a host port already published, naming its
 * owner) and the rules are left to the firewall change that follows the store.
 */
import { PipewrightError } from '../util/errors.js';
import { conflictingPort, insertPort } from '../store/networks.js';
import type { Store } from '../store/store.js';
import type { IpConfig } from '../model/address.js';
import { formatPublish, type PortSpec } from '../model/publish.js';
import { fromBig, prefixBounds } from '../ipam/ipmath.js';

/** Records the guest's published ports (inside the caller's transaction). */
export function recordPorts(store: Store, attachmentId: number, guestName: string, bridge: string, addresses: IpConfig[], ports: PortSpec[]): void {
  const v4 = addresses.find((a) => a.family === 4);
  if (!v4) throw new PipewrightError('publishing ports needs an IPv4 address on the guest interface');
  const ctrSubnet = `${fromBig(prefixBounds(v4.address, v4.prefix, 4)[0], 4)}/${v4.prefix}`;
  for (const p of ports) {
    const taken = conflictingPort(store, p);
    if (taken) {
      throw new PipewrightError(
        `host port ${formatPublish(p).split(':').slice(0, -1).join(':')}/${p.proto} is already published by ${taken.guestName} (${formatPublish(taken)})`,
      );
    }
    insertPort(store, {
      attachmentId,
      guestName,
      bridge,
      proto: p.proto,
      hostIp: p.hostIp,
      hostPort: p.hostPort,
      hostPortEnd: p.hostPortEnd,
      ctrIp: v4.address,
      ctrSubnet,
      ctrPort: p.ctrPort,
    });
  }
}
