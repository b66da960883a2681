/**
 * Kernel change events in the calling process's network namespace: host links and addresses
 * (rtnetlink multicast groups) and every nftables commit (NFNLGRP_NFTABLES; iptables-nft's
 * changes too, as they are nftables commits). A watcher learns only that something changed,
 * and reads the state it cares about itself.
 */
import { syscalls } from '../../util/syscalls.js';

const NETLINK_ROUTE = 0;
const NETLINK_NETFILTER = 12;
const RTNLGRP_LINK = 1;
const RTNLGRP_IPV4_IFADDR = 5;
const RTNLGRP_IPV6_IFADDR = 9;
const NFNLGRP_NFTABLES = 7;

export interface KernelWatch {
  stop(): void;
}

function watch(protocol: number, groups: number[], onEvent: () => void): KernelWatch {
  const id = syscalls().nlWatch(protocol, groups, onEvent);
  return { stop: () => syscalls().nlUnwatch(id) };
}

/** Links created, changed or deleted, and addresses added or removed, in this namespace. */
export function watchLinks(onEvent: () => void): KernelWatch {
  return watch(NETLINK_ROUTE, [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR], onEvent);
}

/** A commit to this namespace's nftables rule set (tables, chains, rules, set elements). */
export function watchNftables(onEvent: () => void): KernelWatch {
  return watch(NETLINK_NETFILTER, [NFNLGRP_NFTABLES], onEvent);
}
