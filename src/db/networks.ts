/** Networks and published ports in the store, and the firewall state derived from them. */
import type { Family } from '../model/address.js';
import type { FirewallState, PortState } from '../model/firewall-state.js';
import type { Proto } from '../model/publish.js';
import type { MacvlanMode } from '../model/validate.js';
import type { Store } from './store.js';

export type NetworkKind = 'bridge' | 'macvlan';

export interface NetworkRecord {
  name: string;
  kind: NetworkKind;
  /**
   * The host interface: the network's bridge, or the parent of a macvlan network's links (a NIC, or
   * a VLAN interface of one).
   */
  hostIf: string;
  pool: string;
  subnet: string;
  gateway: string | null;
  masquerade: boolean;
  isolated: boolean;
  /** The MTU of the network's links; null: the host interface's own. */
  mtu: number | null;
  /** A macvlan network's mode (null: bridge). */
  macvlanMode: MacvlanMode | null;
  /** A macvlan network's address for the host on its shim ("ip/len"), so the host reaches the containers. */
  hostShim: string | null;
  /**
   * A network on a host VLAN interface (`bridge`, made by pipewright when missing): its id, and the
   * NIC it is made on.
   */
  vlan: number | null;
  vlanOf: string | null;
  /** The IPv6 pool of a dual-stack network, its subnet and gateway (on the bridge); null: IPv4 only. */
  pool6: string | null;
  subnet6: string | null;
  gateway6: string | null;
  /** The limits of each Docker endpoint on the network (-o rate=), as --rate's text; null: none. */
  rate: string | null;
  createdAt: string;
}

interface NetworkRow {
  name: string;
  bridge: string;
  pool: string;
  subnet: string;
  gateway: string | null;
  masquerade: number;
  isolated: number;
  kind: NetworkKind;
  mtu: number | null;
  macvlan_mode: MacvlanMode | null;
  host_shim: string | null;
  vlan: number | null;
  vlan_of: string | null;
  pool6: string | null;
  subnet6: string | null;
  gateway6: string | null;
  rate: string | null;
  created_at: string;
}

const toNetwork = (r: NetworkRow): NetworkRecord => ({
  name: r.name,
  hostIf: r.bridge,
  pool: r.pool,
  subnet: r.subnet,
  gateway: r.gateway,
  masquerade: r.masquerade === 1,
  isolated: r.isolated === 1,
  kind: r.kind,
  mtu: r.mtu,
  macvlanMode: r.macvlan_mode,
  hostShim: r.host_shim,
  vlan: r.vlan,
  vlanOf: r.vlan_of,
  pool6: r.pool6,
  subnet6: r.subnet6,
  gateway6: r.gateway6,
  rate: r.rate ?? null,
  createdAt: r.created_at,
});

export function insertNetwork(store: Store, n: Omit<NetworkRecord, 'createdAt'>): void {
  store.db
    .prepare(
      `INSERT INTO networks (name, kind, bridge, pool, subnet, gateway, masquerade, isolated, mtu, macvlan_mode, host_shim, vlan, vlan_of,
                             pool6, subnet6, gateway6, rate, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(
      ...[n.name, n.kind, n.hostIf, n.pool, n.subnet, n.gateway, n.masquerade ? 1 : 0, n.isolated ? 1 : 0],
      ...[n.mtu, n.macvlanMode, n.hostShim, n.vlan, n.vlanOf, n.pool6, n.subnet6, n.gateway6, n.rate],
      new Date().toISOString(),
    );
}

export function listNetworks(store: Store): NetworkRecord[] {
  return (store.stmt('SELECT * FROM networks ORDER BY name').all() as NetworkRow[]).map(toNetwork);
}

export function findNetwork(store: Store, nameOrBridge: string): NetworkRecord | null {
  const row = store.stmt('SELECT * FROM networks WHERE name = ? OR bridge = ?').get(nameOrBridge, nameOrBridge) as
    NetworkRow | undefined;
  return row ? toNetwork(row) : null;
}

export function updateNetworkPolicy(store: Store, name: string, masquerade: boolean, isolated: boolean): void {
  store
    .stmt('UPDATE networks SET masquerade = ?, isolated = ? WHERE name = ?')
    .run(masquerade ? 1 : 0, isolated ? 1 : 0, name);
}

export function deleteNetwork(store: Store, name: string): void {
  store.stmt('DELETE FROM networks WHERE name = ?').run(name);
}

export interface PortRecord extends PortState {
  id: number;
  attachmentId: number;
  guestName: string;
}

interface PortRow {
  id: number;
  attachment_id: number;
  guest_name: string;
  proto: Proto;
  host_ip: string;
  host_port: number;
  host_port_end: number;
  ctr_ip: string;
  ctr_subnet: string;
  ctr_port: number;
  bridge: string;
}

const toPort = (r: PortRow): PortRecord => ({
  id: r.id,
  attachmentId: r.attachment_id,
  guestName: r.guest_name,
  proto: r.proto,
  hostIp: r.host_ip,
  hostPort: r.host_port,
  hostPortEnd: r.host_port_end,
  ctrIp: r.ctr_ip,
  ctrSubnet: r.ctr_subnet,
  ctrPort: r.ctr_port,
  bridge: r.bridge,
});

export function listPorts(store: Store, attachmentId?: number): PortRecord[] {
  const rows =
    attachmentId === undefined
      ? store.stmt('SELECT * FROM ports ORDER BY id').all()
      : store.stmt('SELECT * FROM ports WHERE attachment_id = ? ORDER BY id').all(attachmentId);
  return (rows as PortRow[]).map(toPort);
}

/**
 * A published port of this family whose host side overlaps this one (same protocol, overlapping
 * ports, same or any address). A row's family is its guest address's.
 */
export function conflictingPort(
  store: Store,
  p: Pick<PortState, 'proto' | 'hostIp' | 'hostPort' | 'hostPortEnd'>,
  family: Family,
): PortRecord | null {
  const row = store.db
    .prepare(
      `SELECT * FROM ports WHERE proto = ? AND host_port <= ? AND host_port_end >= ? AND (host_ip = ? OR host_ip = '' OR ? = '')
       AND (instr(ctr_ip, ':') > 0) = ? LIMIT 1`,
    )
    .get(p.proto, p.hostPortEnd, p.hostPort, p.hostIp, p.hostIp, family === 6 ? 1 : 0) as PortRow | undefined;
  return row ? toPort(row) : null;
}

export function insertPort(store: Store, p: Omit<PortRecord, 'id'>): number {
  return Number(
    store.db
      .prepare(
        `INSERT INTO ports (attachment_id, guest_name, proto, host_ip, host_port, host_port_end, ctr_ip, ctr_subnet, ctr_port, bridge)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        p.attachmentId,
        p.guestName,
        p.proto,
        p.hostIp,
        p.hostPort,
        p.hostPortEnd,
        p.ctrIp,
        p.ctrSubnet,
        p.ctrPort,
        p.bridge,
      ).lastInsertRowid,
  );
}

export function deletePortsOf(store: Store, attachmentId: number): void {
  store.stmt('DELETE FROM ports WHERE attachment_id = ?').run(attachmentId);
}

/** Everything the firewall rules are derived from (attachments count once ready: see attach's last step). */
export function firewallState(store: Store): FirewallState {
  // A macvlan network's containers are on the parent's LAN: no bridge, no NAT, no rules.
  const networks = listNetworks(store).filter((n) => n.kind === 'bridge');
  const guestBridges = (
    store.stmt(`SELECT DISTINCT host_if FROM attachments WHERE kind = 'veth' AND state = 'ready'`).all() as {
      host_if: string;
    }[]
  ).map((r) => r.host_if);
  const names = [...new Set([...guestBridges, ...networks.map((n) => n.hostIf)])].sort();
  return {
    bridges: names.map((bridge) => {
      const n = networks.find((x) => x.hostIf === bridge);
      return {
        bridge,
        hasGuests: guestBridges.includes(bridge),
        network: n && { subnet: n.subnet, masquerade: n.masquerade, isolated: n.isolated },
      };
    }),
    ports: listPorts(store),
  };
}

/** A store change the kernel may not have got (a firewall write failed, or its process died first). */
export function setFirewallDirty(store: Store, dirty: boolean): void {
  if (dirty) store.stmt(`INSERT OR REPLACE INTO store_state (key, value) VALUES ('firewall_dirty', '1')`).run();
  else store.stmt(`DELETE FROM store_state WHERE key = 'firewall_dirty'`).run();
}

export function firewallDirty(store: Store): boolean {
  return store.stmt(`SELECT 1 FROM store_state WHERE key = 'firewall_dirty'`).get() !== undefined;
}

/** Built-in chains and tables of iptables-nft that pipewright's writes created (deleted again once empty). */
export function createdBuiltins(store: Store): Set<string> {
  const row = store.stmt(`SELECT value FROM store_state WHERE key = 'iptables_created'`).get() as
    { value: string } | undefined;
  return new Set(row ? (JSON.parse(row.value) as string[]) : []);
}

export function setCreatedBuiltins(store: Store, created: Set<string>): void {
  if (created.size)
    store
      .stmt(`INSERT OR REPLACE INTO store_state (key, value) VALUES ('iptables_created', ?)`)
      .run(JSON.stringify([...created].sort()));
  else store.stmt(`DELETE FROM store_state WHERE key = 'iptables_created'`).run();
}
