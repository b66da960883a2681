/**
 * The firewall's input as data: which bridges have guests, which networks masquerade or are
 * isolated, which ports are published. The store derives it (db/networks.ts), the firewall turns
 * it into rules (net/firewall/rules.ts); it lives here so both can name it.
 */
import type { Proto } from './publish.js';

export interface BridgeState {
  bridge: string;
  /** A pipewright network on this bridge, if any (masquerade/isolation choices). */
  network?: { subnet: string; masquerade: boolean; isolated: boolean };
  /** True when at least one guest is attached (its -i br -o br traffic must pass FORWARD). */
  hasGuests: boolean;
}

export interface PortState {
  proto: Proto;
  /** '' for every local address. */
  hostIp: string;
  hostPort: number;
  hostPortEnd: number;
  ctrIp: string;
  ctrSubnet: string;
  ctrPort: number;
  bridge: string;
}

export interface FirewallState {
  bridges: BridgeState[];
  ports: PortState[];
}
