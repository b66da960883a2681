import { DEFAULT_STATE_DIR } from '../../util/paths.js';

/**
 * What pipewright's firewall objects are called. The host's store (/var/lib/pipewright) owns the
 * `ip pipewright` / `ip6 pipewright` tables and the PIPEWRIGHT-* chains; a store in any other
 * state dir owns objects of its own, named after that dir (`ip pipewright_<id>`, PW-<id>-*).
 * Each write renders its objects whole from its one store: with shared objects, a second store's
 * write would take the first store's published ports away until the first wrote again.
 */

/** pipewright's own iptables chains, each hooked from a built-in one (see iptables.ts). */
export interface IptablesChains {
  forward: string;
  input: string;
  dnat: string;
  post: string;
}

export interface FirewallNames {
  /** The nftables tables, as `nft` names them after `table`: "ip pipewright". */
  nft4: string;
  nft6: string;
  chains: IptablesChains;
}

export const HOST_FIREWALL: FirewallNames = {
  nft4: 'ip pipewright',
  nft6: 'ip6 pipewright',
  chains: {
    forward: 'PIPEWRIGHT-FORWARD',
    input: 'PIPEWRIGHT-INPUT',
    dnat: 'PIPEWRIGHT-DNAT',
    post: 'PIPEWRIGHT-POSTROUTING',
  },
};

/** 32-bit FNV-1a of a string, as 8 hex digits: a short, stable id for a path (not a secret). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/**
 * The names for the store in `stateDir`; the host's store is the one in `hostStateDir` (both
 * resolved, symlinks followed, by the caller: /var/lib/pipewright may be a link). iptables
 * chain names must fit 28 characters: `PW-<8 hex>-POSTROUTING` is 23.
 */
export function firewallNames(stateDir: string, hostStateDir: string = DEFAULT_STATE_DIR): FirewallNames {
  if (stateDir === hostStateDir) return HOST_FIREWALL;
  const id = fnv1a(stateDir);
  return {
    nft4: `ip pipewright_${id}`,
    nft6: `ip6 pipewright_${id}`,
    chains: {
      forward: `PW-${id}-FORWARD`,
      input: `PW-${id}-INPUT`,
      dnat: `PW-${id}-DNAT`,
      post: `PW-${id}-POSTROUTING`,
    },
  };
}
