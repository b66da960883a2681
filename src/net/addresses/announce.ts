/**
 * An address that now answers at another MAC, told to its bridge: the host's own neighbour entry
 * for it set to that MAC (stale: used at once, confirmed later), and a gratuitous ARP broadcast
 * from the host to the bridge's other ports, which update the entry they hold. Docker's endpoints
 * need it: their MAC is new at each start while the pool hands back the same address, and Docker
 * brings the interface up itself before the bridge port forwards, so the guest's own announcement
 * is lost. Without it peers keep sending to the old MAC until their entry expires (seconds to a
 * minute), and the host's first packet waits a whole ARP retry (1 s) when it asks too early.
 * IPv6 peers find the new MAC by their own neighbour probes (no unsolicited NA is sent).
 */
import ipaddr from 'ipaddr.js';
import type { IpConfig } from '../../model/address.js';
import type { StepLog } from '../../util/log.js';
import { syscalls } from '../../util/syscalls.js';
import { mac as macBytes } from '../rtnetlink/attrs.js';
import { logAsIp } from '../rtnetlink/ip-words.js';
import { hostIndex, staleNeighbor } from '../rtnetlink/rtnl.js';
import { hostSocket } from '../rtnetlink/sockets.js';

export async function announceMove(bridge: string, mac: string, addresses: IpConfig[], log?: StepLog): Promise<void> {
  const [index, lladdr] = [hostIndex(bridge), macBytes(mac)];
  logAsIp(
    log,
    addresses.map((a) => ['neigh', 'replace', a.address, 'lladdr', mac, 'dev', bridge, 'nud', 'stale']),
  );
  for (const a of addresses) await staleNeighbor(hostSocket(), index, a, lladdr);
  for (const a of addresses.filter((x) => x.family === 4)) {
    log?.step(`gratuitous ARP on ${bridge}: ${a.address} is at ${mac}  (packet socket)`);
    syscalls().announce(index, lladdr, Buffer.from(ipaddr.IPv4.parse(a.address).toByteArray()));
  }
}
