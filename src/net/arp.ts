/**
 * Gratuitous ARP from inside the guest, so neighbours replace a cached MAC for a reused address
 * at once. busybox's arping (from busybox-static) sends one unsolicited request and exits in ~15 ms.
 */
import { run } from '../exec.js';
import type { StepLog } from '../log.js';
import type { IpConfig } from './address.js';

export async function announce(netnsPath: string, ifname: string, addresses: IpConfig[], log?: StepLog): Promise<void> {
  for (const a of addresses.filter((x) => x.family === 4)) {
    await run('nsenter', [`--net=${netnsPath}`, '--', 'busybox', 'arping', '-U', '-c', '1', '-I', ifname, a.address], { log });
  }
}
