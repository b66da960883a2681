/**
 * Another program's nftables chain that drops forwarded IPv4 traffic: a base chain on the forward
 * hook with policy drop, or one whose last rule drops or rejects whatever reaches it. An accept in
 * pipewright's own table cannot override it (each base chain gives its own verdict), so attach and
 * network create look before they touch the host, and name the table and chain in their error.
 *
 * A table with a rule naming the bridge (iifname/oifname; firewalld's zone dispatch does) or
 * pipewright's accept mark is the admin's way through, and passes. iptables' FORWARD (iptables-nft's `ip filter` table) is not
 * looked at: pipewright hooks its own chain there (or its mark rule), whatever its policy.
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

/**
 * Whether a rule lets the bridge's traffic through by the admin's choice: it names the bridge, or
 * pipewright's mark in a chain that runs after pipewright's (which sets it at priority filter - 1).
 */
function letsThrough(r: NftRule, chain: NftChain, bridge: string): boolean {
  const text = JSON.stringify(r.expr ?? []);
  const namesBridge = /"(iifname|oifname)"/.test(text) && text.includes(JSON.stringify(bridge));
  const namesMark = text.includes('"mark"') && text.includes(String(Number(NFT_ACCEPT_MARK)));
  return namesBridge || (namesMark && (chain.prio ?? 0) >= 0);
}

/** The first chain in `nft -j list ruleset` output that would drop the bridge's forwarded IPv4 traffic. */
export function droppingChain(rulesetJson: string, bridge: string): DroppingChain | null {
  const items = (JSON.parse(rulesetJson) as { nftables: { chain?: NftChain; rule?: NftRule }[] }).nftables;
  const rules = items.map((i) => i.rule).filter((r): r is NftRule => Boolean(r));
  for (const c of items.map((i) => i.chain)) {
    if (!c || c.hook !== 'forward' || !['ip', 'inet'].includes(c.family) || /^pipewright(_[0-9a-f]{8})?$/.test(c.table))
      continue;
    if (c.family === 'ip' && c.table === 'filter' && c.name === 'FORWARD') continue;
    // A rule anywhere in the table (a zone's dispatch chain, say) that names the bridge or the mark.
    const table = rules.filter((r) => r.family === c.family && r.table === c.table);
    if (table.some((r) => letsThrough(r, c, bridge))) continue;
    const own = table.filter((r) => r.chain === c.name);
    if (c.policy === 'drop') return { family: c.family, table: c.table, chain: c.name, why: 'policy drop' };
    if (endsInDrop(own.at(-1)))
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
