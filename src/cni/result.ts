/**
 * CNI results: what pipewright made, in the spec's result format for the version the runtime
 * asked for (0.3.x/0.4.0 give each IP a "version"; 1.x does not).
 */
import type { IpConfig } from '../model/address.js';
import { routesOf } from '../model/attachment.js';
import type { CniResult, NetConf } from './netconf.js';

/** An address as the runtime gets it: CIDR form, the gateway, and the interface it is on (index into interfaces). */
export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export function resultIps(addresses: IpConfig[], iface?: number): ResultIp[] {
  return addresses.map((a) => ({
    address: `${a.address}/${a.prefix}`,
    ...(a.gateway ? { gateway: a.gateway } : {}),
    ...(iface === undefined ? {} : { interface: iface }),
  }));
}

/** The default routes the guest gets (routesOf's rule: one per family whose address names a gateway), in CNI's form. */
export function defaultRoutes(addresses: IpConfig[]): { dst: string; gw: string }[] {
  return routesOf({ addresses, routes: [] }).map((r) => ({ dst: r.family === 4 ? '0.0.0.0/0' : '::/0', gw: r.via! }));
}

/** The result in the runtime's version: a 0.x result names each IP's family. */
export function versioned(conf: NetConf, result: CniResult): CniResult {
  const ips = conf.cniVersion.startsWith('0.')
    ? result.ips?.map((ip) => ({ ...ip, version: ip.address.includes(':') ? '6' : '4' }))
    : result.ips;
  return { cniVersion: conf.cniVersion, ...result, ips, ...(conf.dns ? { dns: conf.dns } : {}) };
}
