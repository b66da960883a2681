/**
 * pipewright's whole firewall as data, derived from the store: which bridges have guests, which
 * networks masquerade or are isolated, which ports are published. Backends render these rules
 * (iptables-restore text, nft scripts) and apply only the difference with what the kernel holds,
 * so adding, removing and `firewall sync` are one mechanism.
 */
import type { FirewallState, PortState } from '../../model/firewall-state.js';
import type { Family } from '../../model/address.js';
import { familyOf, type Proto } from '../../model/publish.js';

export type Rule =
  /** Guests on one bridge reach each other (both families). */
  | { type: 'bridge-internal'; bridge: string }
  /** A masquerading network's guests reach out, and replies come back. */
  | { type: 'bridge-egress'; bridge: string }
  | { type: 'masquerade'; bridge: string; subnet: string }
  /** An isolated network's bridge drops traffic to another pipewright bridge. */
  | { type: 'isolate'; from: string; to: string }
  /** Replies of connections the bridge's guests opened come back in. */
  | { type: 'bridge-replies'; family: Family; bridge: string }
  /**
   * Replies of published ports leave the bridge: where FORWARD drops, a network without masquerade
   * has no other accept for them.
   */
  | { type: 'port-replies'; family: Family; bridge: string }
  /** 127.0.0.1:<port> reaches a guest: masquerade loopback sources out of the bridge. */
  | { type: 'localnet'; bridge: string }
  /**
   * The other side of route_localnet (the CVE-2020-8558 pattern): a guest must not reach the host's
   * 127.0.0.0/8 services through its gateway. New connections from the bridge to 127.0.0.0/8 that
   * were not DNATed are dropped.
   */
  | { type: 'localhost-guard'; bridge: string }
  /**
   * Guests of this subnet reaching a published port on their own bridge through the host are
   * masqueraded (per-port match below; DNATed connections only).
   */
  | { type: 'hairpin-source'; bridge: string; subnet: string }
  | { type: 'dnat'; proto: Proto; hostIp: string; hostPort: number; ctrIp: string; ctrPort: number }
  | { type: 'hairpin'; proto: Proto; subnet: string; ctrIp: string; ctrPort: number; bridge: string }
  | { type: 'port-forward'; proto: Proto; bridge: string; ctrIp: string; ctrPort: number };

/** The one family a rule belongs to (its addresses'), or null for a rule of both. */
export function ruleFamily(r: Rule): Family | null {
  switch (r.type) {
    case 'bridge-internal':
      return null;
    case 'bridge-replies':
    case 'port-replies':
      return r.family;
    case 'hairpin-source':
    case 'masquerade':
      return familyOf(r.subnet);
    case 'dnat':
    case 'hairpin':
    case 'port-forward':
      return familyOf(r.ctrIp);
    default:
      return 4; // bridge-egress, isolate, localnet, localhost-guard: IPv4 NAT and 127.0.0.0/8
  }
}

/** One rule per published port number: DNAT port ranges are expanded (DNAT to a range does not keep offsets). */
function portRules(p: PortState): Rule[] {
  const out: Rule[] = [];
  for (let i = 0; i <= p.hostPortEnd - p.hostPort; i++) {
    const ctrPort = p.ctrPort + i;
    out.push(
      { type: 'dnat', proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort + i, ctrIp: p.ctrIp, ctrPort },
      { type: 'hairpin', proto: p.proto, subnet: p.ctrSubnet, ctrIp: p.ctrIp, ctrPort, bridge: p.bridge },
      { type: 'port-forward', proto: p.proto, bridge: p.bridge, ctrIp: p.ctrIp, ctrPort },
    );
  }
  return out;
}

/** Which published ports' own rules (DNAT, hairpin, forward accept) a rule set is to hold. */
export type PortScope = (p: PortState) => boolean;

const everyPort: PortScope = () => true;

/**
 * The rule set the state asks for. With a scope, the per-port rules only of the ports it passes
 * (the per-bridge rules still of all): enough for a backend that holds per-port state as set
 * elements to write a change's difference (portsTouched).
 */
export function desiredRules(state: FirewallState, scope: PortScope = everyPort): Rule[] {
  const rules: Rule[] = [];
  const networked = state.bridges.filter((b) => b.network);
  for (const b of state.bridges) {
    if (b.hasGuests || b.network) rules.push({ type: 'bridge-internal', bridge: b.bridge });
    if (b.network?.masquerade) {
      rules.push(
        { type: 'bridge-egress', bridge: b.bridge },
        // The replies to its guests' connections, where another program's FORWARD drops (Docker's policy).
        { type: 'bridge-replies', family: familyOf(b.network.subnet), bridge: b.bridge },
        { type: 'masquerade', bridge: b.bridge, subnet: b.network.subnet },
      );
    }
    if (b.network?.isolated) {
      for (const other of networked.filter((o) => o.bridge !== b.bridge)) {
        rules.push(
          { type: 'isolate', from: b.bridge, to: other.bridge },
          { type: 'isolate', from: other.bridge, to: b.bridge },
        );
      }
    }
  }
  for (const family of [4, 6] as const) {
    for (const bridge of new Set(state.ports.filter((p) => familyOf(p.ctrIp) === family).map((p) => p.bridge))) {
      rules.push({ type: 'bridge-replies', family, bridge }, { type: 'port-replies', family, bridge });
      // route_localnet (127.0.0.1:<port>) has no IPv6 twin: ::1 is never DNATed.
      if (family === 4) rules.push({ type: 'localnet', bridge }, { type: 'localhost-guard', bridge });
    }
  }
  for (const p of state.ports) rules.push({ type: 'hairpin-source', bridge: p.bridge, subnet: p.ctrSubnet });
  for (const p of state.ports) if (scope(p)) rules.push(...portRules(p));
  return dedupe(rules);
}

const portKey = (p: PortState) =>
  [p.proto, p.hostIp, p.hostPort, p.hostPortEnd, p.ctrIp, p.ctrSubnet, p.ctrPort, p.bridge].join(' ');

/**
 * The ports whose rules can differ between two states: those of every guest address a published
 * port was added to or removed from. Every per-port rule names its guest address, so rules of the
 * other ports are the same on both sides, and none of them equals a rule of these; their
 * difference is the whole difference. What is derived then does not grow with what else is
 * published (only this count does: one key per port row).
 */
export function portsTouched(before: PortState[], after: PortState[]): PortScope {
  const count = new Map<string, { ctrIp: string; n: number }>();
  for (const [ports, sign] of [
    [before, 1],
    [after, -1],
  ] as const) {
    for (const p of ports) {
      const key = portKey(p);
      const c = count.get(key) ?? { ctrIp: p.ctrIp, n: 0 };
      c.n += sign;
      count.set(key, c);
    }
  }
  const touched = new Set([...count.values()].filter((c) => c.n !== 0).map((c) => c.ctrIp));
  return (p) => touched.has(p.ctrIp);
}

/**
 * Two isolated networks both ask for the same drop pair, every port of a subnet for its
 * hairpin-source, two host ports of one guest port for its accept; keep each rule once, in order.
 * A rule's values in order are its key: each type is made in this file, its fields always in one
 * order, and no value holds a NUL (JSON.stringify cost a daemon ~10 ms per change with 1,000 ports).
 */
function dedupe(rules: Rule[]): Rule[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const key = Object.values(r).join('\0');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
