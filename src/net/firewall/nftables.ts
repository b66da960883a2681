/**
 * The nftables backend: one table per family, `ip pipewright` and `ip6 pipewright`, alike (a
 * store outside the host's state dir has tables of its own, names.ts).
 * Per-port state lives in sets and maps, so publishing or removing a port adds or deletes set
 * elements (constant cost, whatever else is published); the few per-bridge rules are rewritten
 * in the same `nft -f` transaction. An empty rule set removes the tables.
 *
 * An accept in one nftables base chain cannot override a drop in another: where another
 * program's iptables FORWARD chain drops (Docker's policy), the forwarding accepts are mirrored
 * into PIPEWRIGHT-FORWARD there, so guests still pass.
 */
import type { Family } from '../../model/address.js';
import { run, startEarly } from '../../util/exec.js';
import type { StepLog } from '../../util/log.js';
import { applyIptables, NFT_ACCEPT_MARK } from './iptables.js';
import { HOST_FIREWALL, type FirewallNames } from './names.js';
import { ruleFamily, type Rule } from './rules.js';

/** One table per family, the same chains and sets in each; only the address type and match differ. */
const FAMILY = {
  4: { ip: 'ip', addr: 'ipv4_addr' },
  6: { ip: 'ip6', addr: 'ipv6_addr' },
} as const;
/** A store's table of a family (names.ts), as `nft` names it after `table`. */
const tableOf = (n: FirewallNames, family: Family) => (family === 4 ? n.nft4 : n.nft6);
const FAMILIES = [4, 6] as const;

/** Sets and maps, with their types: element strings are written and read back in this form. */
const SETS = {
  published: (a: string) => `set published { type ifname . ${a} . inet_proto . inet_service; }`,
  hairpin: (a: string) => `set hairpin { type ifname . ${a} . inet_proto . inet_service; }`,
  dnat_any: (a: string) => `map dnat_any { type inet_proto . inet_service : ${a} . inet_service; }`,
  dnat_addr: (a: string) => `map dnat_addr { type ${a} . inet_proto . inet_service : ${a} . inet_service; }`,
} as const;
type SetName = keyof typeof SETS;

const CHAINS = [
  // Before iptables' own FORWARD (priority filter), so the mark below is set when it looks.
  'chain forward { type filter hook forward priority filter - 1; policy accept; }',
  'chain input { type filter hook input priority filter; policy accept; }',
  'chain prerouting { type nat hook prerouting priority dstnat; policy accept; }',
  'chain output { type nat hook output priority -100; policy accept; }',
  'chain postrouting { type nat hook postrouting priority srcnat; policy accept; }',
  'chain port_dnat { }',
];
const L4 = 'meta l4proto { tcp, udp }';
/** Every accept marks the packet: an iptables FORWARD that drops lets marked packets pass (see iptables.ts). */
const ACCEPT = `meta mark set meta mark | ${NFT_ACCEPT_MARK} accept`;
const q = (ifname: string) => `"${ifname}"`;
const ofFamily = (rules: Rule[], family: Family) => rules.filter((r) => [null, family].includes(ruleFamily(r)));

/** The element a port rule becomes, or null for a rule that is a chain rule. */
export function elementOf(r: Rule): [SetName, string] | null {
  switch (r.type) {
    case 'dnat':
      return r.hostIp
        ? ['dnat_addr', `${r.hostIp} . ${r.proto} . ${r.hostPort} : ${r.ctrIp} . ${r.ctrPort}`]
        : ['dnat_any', `${r.proto} . ${r.hostPort} : ${r.ctrIp} . ${r.ctrPort}`];
    case 'hairpin':
      return ['hairpin', `${q(r.bridge)} . ${r.ctrIp} . ${r.proto} . ${r.ctrPort}`];
    case 'port-forward':
      return ['published', `${q(r.bridge)} . ${r.ctrIp} . ${r.proto} . ${r.ctrPort}`];
    default:
      return null;
  }
}

/** Chain rules of one family's table, in order (drops before accepts). */
export function chainRules(all: Rule[], family: Family, n: FirewallNames = HOST_FIREWALL): string[] {
  const { ip } = FAMILY[family];
  const T = tableOf(n, family);
  // ::1 is never DNATed (no route_localnet for IPv6): a connection to [::1]:<port> is refused at once.
  const notLoopback = family === 6 ? 'ip6 daddr != ::1 ' : '';
  const rules = ofFamily(all, family);
  const out: string[] = [
    `add rule ${T} prerouting fib daddr type local jump port_dnat`,
    `add rule ${T} output ${notLoopback}fib daddr type local jump port_dnat`,
    `add rule ${T} port_dnat ${L4} dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @dnat_addr`,
    `add rule ${T} port_dnat ${L4} dnat ${ip} to meta l4proto . th dport map @dnat_any`,
  ];
  for (const r of rules)
    if (r.type === 'isolate') out.push(`add rule ${T} forward iifname ${q(r.from)} oifname ${q(r.to)} drop`);
  out.push(`add rule ${T} forward ${L4} oifname . ${ip} daddr . meta l4proto . th dport @published ${ACCEPT}`);
  for (const r of rules) {
    if (r.type === 'bridge-internal')
      out.push(`add rule ${T} forward iifname ${q(r.bridge)} oifname ${q(r.bridge)} ${ACCEPT}`);
    if (r.type === 'bridge-egress')
      out.push(`add rule ${T} forward iifname ${q(r.bridge)} oifname != ${q(r.bridge)} ${ACCEPT}`);
    if (r.type === 'bridge-replies' || r.type === 'bridge-egress')
      out.push(`add rule ${T} forward oifname ${q(r.bridge)} ct state established,related ${ACCEPT}`);
    if (r.type === 'port-replies')
      out.push(
        `add rule ${T} forward iifname ${q(r.bridge)} oifname != ${q(r.bridge)} ct state established,related ${ACCEPT}`,
      );
    if (r.type === 'masquerade')
      out.push(`add rule ${T} postrouting ${ip} saddr ${r.subnet} oifname != ${q(r.bridge)} masquerade`);
    if (r.type === 'localnet')
      out.push(`add rule ${T} postrouting ip saddr 127.0.0.0/8 oifname ${q(r.bridge)} masquerade`);
    if (r.type === 'localhost-guard')
      out.push(
        `add rule ${T} input iifname ${q(r.bridge)} ip daddr 127.0.0.0/8 ct state new ct status & dnat == 0 drop`,
      );
    // iifname is not known in postrouting for bridged (br_netfilter) packets: match the source subnet;
    // only DNATed connections (a guest's direct connection to another's published port is not NATed).
    if (r.type === 'hairpin-source') {
      out.push(
        `add rule ${T} postrouting ${ip} saddr ${r.subnet} ct status dnat ${L4} oifname . ${ip} daddr . meta l4proto . th dport @hairpin masquerade`,
      );
    }
  }
  return [...new Set(out)];
}

interface NftJsonSet {
  name: string;
  elem?: (unknown[] | { concat: unknown[] })[];
}

/** nft -j writes an element as a value, {concat: [...]}, or [key, value] for maps. */
function elemText(e: unknown): string {
  const parts = (x: unknown) =>
    (x && typeof x === 'object' && 'concat' in x ? (x as { concat: unknown[] }).concat : [x]).map(String).join(' . ');
  return Array.isArray(e) ? `${parts(e[0])} : ${parts(e[1])}` : parts(e);
}

/** The elements each set of a family's table holds now; null when the table does not exist. */
async function readElements(
  family: Family,
  n: FirewallNames,
  log?: StepLog,
): Promise<Map<SetName, Set<string>> | null> {
  const res = await run('nft', ['-j', 'list', 'table', ...tableOf(n, family).split(' ')], {
    allowFailure: true,
    log,
  });
  if (res.exitCode !== 0) return null;
  const out = new Map<SetName, Set<string>>();
  for (const obj of JSON.parse(res.stdout).nftables as Record<string, NftJsonSet>[]) {
    const set = obj.set ?? obj.map;
    if (!set || !(set.name in SETS)) continue;
    const ifnames = set.name === 'hairpin' || set.name === 'published' ? 1 : 0;
    out.set(set.name as SetName, new Set((set.elem ?? []).map((e) => quoteIfnames(elemText(e), ifnames))));
  }
  return out;
}

/** nft's JSON drops the quotes of ifname values; put them back on the first n parts. */
function quoteIfnames(text: string, n: number): string {
  const parts = text.split(' . ');
  for (let i = 0; i < n; i++) parts[i] = q(parts[i]);
  return parts.join(' . ');
}

async function tableExists(table: string): Promise<boolean> {
  return (await run('nft', ['list', 'table', ...table.split(' ')], { allowFailure: true })).exitCode === 0;
}

function elementsOf(rules: Rule[], family: Family): Map<SetName, Set<string>> {
  const out = new Map<SetName, Set<string>>(Object.keys(SETS).map((k) => [k as SetName, new Set<string>()]));
  for (const r of ofFamily(rules, family)) {
    const el = elementOf(r);
    if (el) out.get(el[0])!.add(el[1]);
  }
  return out;
}

/** Table, chains and sets (idempotent `add`), then the chain rules rewritten from scratch. */
function structure(rules: Rule[], family: Family, n: FirewallNames): string[] {
  const { addr } = FAMILY[family];
  const T = tableOf(n, family);
  return [
    `add table ${T}`,
    ...CHAINS.map((c) => `add ${c.replace('chain ', `chain ${T} `)}`),
    ...Object.values(SETS).map((set) => `add ${set(addr).replace(/^(set|map) /, `$1 ${T} `)}`),
    ...['forward', 'input', 'prerouting', 'output', 'postrouting', 'port_dnat'].map((c) => `flush chain ${T} ${c}`),
    ...chainRules(rules, family, n),
  ];
}

/** Element deletions and additions that turn `have` into what `rules` want, in one family's table. */
function elementDelta(
  rules: Rule[],
  have: Map<SetName, Set<string>> | null,
  family: Family,
  n: FirewallNames,
): string[] {
  const lines: string[] = [];
  const T = tableOf(n, family);
  for (const [name, elems] of elementsOf(rules, family)) {
    const current = have?.get(name) ?? new Set<string>();
    const gone = [...current].filter((e) => !elems.has(e));
    const added = [...elems].filter((e) => !current.has(e));
    if (gone.length) lines.push(`delete element ${T} ${name} { ${gone.join(', ')} }`);
    if (added.length) lines.push(`add element ${T} ${name} { ${added.join(', ')} }`);
  }
  return lines;
}

/** How every nftables change is written: one script, read whole, committed as one transaction. */
const SCRIPT = ['-f', '-'];

async function nft(lines: string[], log?: StepLog): Promise<void> {
  if (lines.length) await run('nft', SCRIPT, { input: lines.join('\n') + '\n', log });
}

/** Starts the nft that the next write runs (it reads its whole script before anything else); returns its release. */
export const startNftWrite = (): (() => Promise<void>) => startEarly('nft', SCRIPT);

/** Removes a store's nftables tables, if there are any. */
export async function clearNftables(log?: StepLog, n: FirewallNames = HOST_FIREWALL): Promise<void> {
  const lines = [];
  for (const f of FAMILIES) if (await tableExists(tableOf(n, f))) lines.push(`delete table ${tableOf(n, f)}`);
  await nft(lines, log);
}

/** What a full apply writes onto a kernel that holds none of it (drift.ts counts what it makes). */
export function fullScript(rules: Rule[], n: FirewallNames = HOST_FIREWALL): string[] {
  return FAMILIES.flatMap((f) => [...structure(rules, f, n), ...elementDelta(rules, null, f, n)]);
}

/** Full apply: reads the sets once, rewrites the chain rules, changes only the elements that differ. */
export async function applyNftables(rules: Rule[], log?: StepLog, n: FirewallNames = HOST_FIREWALL): Promise<void> {
  if (rules.length === 0) await clearNftables(log, n);
  else {
    const lines: string[] = [];
    for (const f of FAMILIES)
      lines.push(...structure(rules, f, n), ...elementDelta(rules, await readElements(f, n, log), f, n));
    await nft(lines, log);
  }
  await applyIptables(rules, log, { nftMark: true, chains: n.chains });
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Delta apply, with no read: a port is an element added or deleted, whatever else is published;
 * chain rules are rewritten only when bridges or networks changed. First and last rule sets go
 * through the full apply (tables and the iptables mark rule come and go with them).
 * `before` and `after` may hold the per-port rules only of the ports the change touched
 * (rules.ts portsTouched): every published port brings per-bridge rules too, so a side is empty
 * only when its whole rule set is.
 */
export async function applyNftablesDelta(
  before: Rule[],
  after: Rule[],
  log?: StepLog,
  n: FirewallNames = HOST_FIREWALL,
): Promise<void> {
  if (before.length === 0 || after.length === 0) return applyNftables(after, log, n);
  await nft(deltaScript(before, after, n), log);
}

/** The delta apply's script, between two rule sets that both hold rules. */
export function deltaScript(before: Rule[], after: Rule[], n: FirewallNames = HOST_FIREWALL): string[] {
  const lines: string[] = [];
  for (const f of FAMILIES) {
    if (!same(chainRules(before, f, n), chainRules(after, f, n))) lines.push(...structure(after, f, n));
    lines.push(...elementDelta(after, elementsOf(before, f), f, n));
  }
  return lines;
}
