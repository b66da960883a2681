/**
 * Another program's nftables chain that drops forwarded traffic (IPv4 or IPv6: ip, ip6 and inet
 * tables): a base chain on the forward hook with policy drop, or one whose last rule drops or
 * rejects whatever reaches it. An accept in pipewright's own table cannot override it (each base
 * chain gives its own verdict), so attach and network create look before they touch the host,
 * and name the table and chain in their error.
 *
 * The admin's way through passes: a path from that chain of rules that match only the bridge
 * (iifname/oifname, as firewalld's zone dispatch does) or pipewright's accept mark, ending in an
 * accept, through jumps and gotos (firewalld's trusted zone) and before any drop. iptables'
 * FORWARD (iptables-nft's `ip filter` and `ip6 filter` tables) is not looked at: pipewright hooks
 * its own chain there (or its mark rule), whatever its policy.
 */
import { run } from '../../util/exec.js';
import { PipewrightError } from '../../util/errors.js';
import { toolInstalled } from '../../util/paths.js';
import { NFT_ACCEPT_MARK } from './iptables.js';

export interface DroppingChain {
  family: string;
  table: string;
  chain: string;
  why: 'policy drop' | 'a last rule that drops';
}

interface NftChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  prio?: number;
  policy?: string;
}
interface NftRule {
  family: string;
  table: string;
  chain: string;
  expr?: Record<string, unknown>[];
}

const VERDICT_ONLY = new Set(['counter', 'log', 'drop', 'reject']);
const endsInDrop = (r: NftRule | undefined) =>
  Boolean(r?.expr?.length) &&
  r!.expr!.every((e) => Object.keys(e).every((k) => VERDICT_ONLY.has(k))) &&
  r!.expr!.some((e) => 'drop' in e || 'reject' in e);

/** Statements that neither match nor decide. */
const PASSIVE = new Set(['counter', 'log']);
const MAX_DEPTH = 16;

type Expr = Record<string, unknown>;
interface Match {
  op?: string;
  left?: { meta?: { key?: string }; '&'?: [{ meta?: { key?: string } }, unknown] };
  right?: unknown;
}

/** `right` is the bridge's name, or a set holding it. */
const holdsName = (right: unknown, bridge: string) =>
  right === bridge || Boolean((right as { set?: unknown[] })?.set?.includes(bridge));

/**
 * A match only the bridge's traffic passes: its name as in or out interface, or pipewright's
 * mark in a chain that runs after pipewright's (which sets it at priority filter - 1).
 */
function bridgeMatch(m: Match, bridge: string, prio: number): boolean {
  if (m.op !== '==' && m.op !== 'in') return false;
  const key = m.left?.meta?.key;
  if ((key === 'iifname' || key === 'oifname') && holdsName(m.right, bridge)) return true;
  const [masked, mask] = m.left?.['&'] ?? [];
  return masked?.meta?.key === 'mark' && Number(mask) === Number(NFT_ACCEPT_MARK) && prio >= 0;
}

type Verdict = 'accept' | 'drop' | 'return';
type Step = { verdict: Verdict } | { to: string; goto: boolean } | null;

/** What a rule surely does with the bridge's forwarded traffic (null: it may not apply, or decides nothing). */
function stepOf(r: NftRule, bridge: string, prio: number): Step {
  let step: Step = null;
  for (const e of r.expr ?? ([] as Expr[])) {
    const [k, v] = Object.entries(e)[0] ?? [];
    if (k === 'match') {
      if (!bridgeMatch(v as Match, bridge, prio)) return null;
    } else if (k === 'accept') step = { verdict: 'accept' };
    else if (k === 'drop' || k === 'reject') step = { verdict: 'drop' };
    else if (k === 'return') step = { verdict: 'return' };
    else if (k === 'jump' || k === 'goto') step = { to: (v as { target: string }).target, goto: k === 'goto' };
    else if (!PASSIVE.has(k!)) return null; // a statement that may decide otherwise (a limit, a queue)
  }
  return step;
}

/**
 * The verdict `chain` gives the bridge's forwarded traffic as far as its rules surely say: a jump
 * that comes back goes on, a goto's chain decides for this one; 'return' when none decides.
 */
function verdictIn(rules: NftRule[], chain: string, bridge: string, prio: number, depth = 0): Verdict {
  if (depth > MAX_DEPTH) return 'drop';
  for (const r of rules.filter((x) => x.chain === chain)) {
    const step = stepOf(r, bridge, prio);
    if (!step) continue;
    if ('verdict' in step) return step.verdict;
    const sub = verdictIn(rules, step.to, bridge, prio, depth + 1);
    if (step.goto || sub !== 'return') return sub;
  }
  return 'return';
}

const isIptablesForward = (c: NftChain) =>
  ['ip', 'ip6'].includes(c.family) && c.table === 'filter' && c.name === 'FORWARD';

/** The first chain in `nft -j list ruleset` output that would drop the bridge's forwarded traffic. */
export function droppingChain(rulesetJson: string, bridge: string): DroppingChain | null {
  const items = (JSON.parse(rulesetJson) as { nftables: { chain?: NftChain; rule?: NftRule }[] }).nftables;
  const rules = items.map((i) => i.rule).filter((r): r is NftRule => Boolean(r));
  for (const c of items.map((i) => i.chain)) {
    if (!c || c.hook !== 'forward' || !['ip', 'ip6', 'inet'].includes(c.family)) continue;
    if (/^pipewright(_[0-9a-f]{8})?$/.test(c.table) || isIptablesForward(c)) continue;
    const table = rules.filter((r) => r.family === c.family && r.table === c.table);
    if (verdictIn(table, c.name, bridge, c.prio ?? 0) === 'accept') continue;
    if (c.policy === 'drop') return { family: c.family, table: c.table, chain: c.name, why: 'policy drop' };
    if (endsInDrop(table.filter((r) => r.chain === c.name).at(-1)))
      return { family: c.family, table: c.table, chain: c.name, why: 'a last rule that drops' };
  }
  return null;
}

/** The one line attach and network create refuse with, and how to let the traffic through. */
export function dropMessage(d: DroppingChain, bridge: string, backend: 'iptables' | 'nftables'): string {
  const at = `${d.family} ${d.table} ${d.chain}`;
  const fix =
    d.table === 'firewalld'
      ? `firewall-cmd --permanent --zone=trusted --add-interface=${bridge} && firewall-cmd --reload (firewalld owns that table)`
      : backend === 'nftables'
        ? `nft insert rule ${at} meta mark and ${NFT_ACCEPT_MARK} == ${NFT_ACCEPT_MARK} accept (what pipewright accepts, any bridge)`
        : `nft insert rule ${at} iifname "${bridge}" accept; nft insert rule ${at} oifname "${bridge}" accept`;
  return `nftables chain ${at} (${d.why}) would drop ${bridge}'s forwarded traffic; let it through there first: ${fix}`;
}

/** Refuses (one line, nothing changed) when another program's chain would drop the bridge's forwarded traffic. */
export async function checkForwardDrop(bridge: string, backend: 'iptables' | 'nftables'): Promise<void> {
  if (!toolInstalled('nft')) return;
  const res = await run('nft', ['-j', 'list', 'ruleset'], { allowFailure: true });
  if (res.exitCode !== 0) return; // no nf_tables here: no such chain either
  const d = droppingChain(res.stdout, bridge);
  if (d) throw new PipewrightError(dropMessage(d, bridge, backend));
}
