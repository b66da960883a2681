/**
 * The netavark plugin's commands on pipewright's core. create only checks and completes the
 * config (podman stores it; nothing on the host yet). setup is the CNI front end's ADD: the
 * network's pool and bridge are made by its first container. teardown is DEL, and the last
 * container's teardown also takes the network's bridge, firewall rules and pool away: netavark
 * has no call for `podman network rm`, so a network holds nothing on the host while it has no
 * container (`gc` does the same after a killed teardown).
 */
import { addMain, delMain } from '../cni/commands.js';
import type { CniResult } from '../cni/netconf.js';
import type { CoreContext } from '../ops/context.js';
import { inIdleNetworkTurn, releaseIdleNetwork } from '../ops/network.js';
import { asCniCall, bridgeOf, checkNetworkConfig, checkParentPresent, storeName } from './network.js';
import type { NetavarkExec, NetavarkNetwork, StatusBlock } from './types.js';

export const API_VERSION = '1.0.0';

/**
 * The config podman stores: the interface it shows, DNS off (pipewright serves none), and IPAM
 * "none" so that podman leaves the addresses to pipewright's pool.
 */
export function create(n: NetavarkNetwork): NetavarkNetwork {
  checkNetworkConfig(n);
  checkParentPresent(n);
  return {
    ...n,
    network_interface: n.options?.parent ?? bridgeOf(n),
    dns_enabled: false,
    ipam_options: { ...(n.ipam_options ?? {}), driver: 'none' },
  };
}

/** CNI's result as netavark's status block: the container's interface, its MAC and addresses. */
function statusBlock(result: CniResult, ifname: string): StatusBlock {
  const index = (result.interfaces ?? []).findIndex((i) => i.sandbox !== undefined && i.name === ifname);
  const iface = result.interfaces?.[index];
  const subnets = (result.ips ?? [])
    .filter((ip) => ip.interface === undefined || ip.interface === index)
    .map((ip) => ({ ipnet: ip.address, ...(ip.gateway ? { gateway: ip.gateway } : {}) }));
  return {
    dns_search_domains: [],
    dns_server_ips: [],
    interfaces: { [ifname]: { mac_address: iface?.mac ?? '', subnets } },
  };
}

export async function setup(ctx: CoreContext, netns: string, exec: NetavarkExec): Promise<StatusBlock> {
  const { conf, env } = asCniCall(exec, netns, 'ADD');
  return statusBlock(await inIdleNetworkTurn(ctx, () => addMain(ctx, conf, env)), env.ifname);
}

export async function teardown(ctx: CoreContext, netns: string, exec: NetavarkExec): Promise<void> {
  const { conf, env } = asCniCall(exec, netns, 'DEL');
  await delMain(ctx, conf, env);
  await releaseIdleNetwork(ctx, storeName(exec.network), conf.bridge);
}
