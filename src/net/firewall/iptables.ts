/**
 * The iptables backend. Rules go into pipewright's own chains, hooked once from the built-in ones:
 *
 *   filter FORWARD     -> PIPEWRIGHT-FORWARD       (IPv4; IPv6 where an ip6 filter table exists)
 *   filter INPUT       -> PIPEWRIGHT-INPUT         (guests may not reach the host's 127.0.0.0/8)
 *   nat    PREROUTING  -> PIPEWRIGHT-DNAT          (-m addrtype --dst-type LOCAL)
 *   nat    OUTPUT      -> PIPEWRIGHT-DNAT          (the host itself, 127.0.0.1 included; not ::1)
 *   nat    POSTROUTING -> PIPEWRIGHT-POSTROUTING
 *
 * (the host store's names; a store in another state dir has chains of its own, names.ts).
 * Rules are written exactly as iptables-save prints them, so one read of the rule set tells which
 * are there; an apply adds what is missing and deletes what is no longer wanted in one
 * `iptables-restore --noflush` call per family. Chains and hooks go away with their last rule.
 * Other software's rules are never flushed or reordered.
 *
 * iptables-nft creates a built-in chain (and its table) the first time a rule goes into it, and
 * keeps it after the last rule left. The chains and tables pipewright's writes created are
 * remembered (in the store, by the caller) and deleted again once empty: the rule set after the
 * last guest leaves is the one found before the first came.
 */
import { PipewrightError } from '../../util/errors.js';
import { run } from '../../util/exec.js';
import { toolInstalled } from '../../util/paths.js';
import type { StepLog } from '../../util/log.js';
import type { Family } from '../../model/address.js';
import { HOST_FIREWALL, type IptablesChains } from './names.js';
import { ruleFamily, type Rule } from './rules.js';

/** The host store's chains (names.ts: another store's are its own). */
export const CHAINS = HOST_FIREWALL.chains;

type Table = 'filter' | 'nat';

interface Line {
  table: Table;
  chain: string;
  spec: string;
  /** Drops must precede the accepts of the same chain. */
  first?: boolean;
}

interface Hook {
  table: Table;
  chain: string;
  spec: string;
  jumpTo: string;
  first?: boolean;
}

/**
 * The jumps from the built-in chains into a store's own, per family. ::1 is never DNATed (IPv6
 * has no route_localnet): a connection to [::1]:<port> is refused at once.
 */
function hooksOf(c: IptablesChains, family: Family): Hook[] {
  const local = `-m addrtype --dst-type LOCAL -j ${c.dnat}`;
  return [
    { table: 'filter', chain: 'FORWARD', spec: `-j ${c.forward}`, jumpTo: c.forward, first: true },
    { table: 'filter', chain: 'INPUT', spec: `-j ${c.input}`, jumpTo: c.input, first: true },
    { table: 'nat', chain: 'PREROUTING', spec: local, jumpTo: c.dnat },
    { table: 'nat', chain: 'OUTPUT', spec: family === 6 ? `! -d ::1/128 ${local}` : local, jumpTo: c.dnat },
    { table: 'nat', chain: 'POSTROUTING', spec: `-j ${c.post}`, jumpTo: c.post },
  ];
}

const tcpudp = (proto: string, port: number | string) => `-p ${proto} -m ${proto} --dport ${port}`;

/** The iptables-save form of a rule, for one family (null: the rule is of the other family). */
export function renderRule(r: Rule, family: Family, c: IptablesChains = CHAINS): Line | null {
  const F = c.forward;
  const est = '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT';
  const ruleOf = ruleFamily(r);
  if (ruleOf !== null && ruleOf !== family) return null;
  const host = (ip: string) => `${ip}/${family === 4 ? 32 : 128}`;
  const to = (ip: string, port: number) => (family === 4 ? `${ip}:${port}` : `[${ip}]:${port}`);
  switch (r.type) {
    case 'bridge-internal':
      return { table: 'filter', chain: F, spec: `-i ${r.bridge} -o ${r.bridge} -j ACCEPT` };
    case 'hairpin-source':
      return null; // each hairpin rule below carries its source subnet
    case 'bridge-egress':
      return { table: 'filter', chain: F, spec: `-i ${r.bridge} ! -o ${r.bridge} -j ACCEPT` };
    case 'bridge-replies':
      return { table: 'filter', chain: F, spec: `-o ${r.bridge} ${est}` };
    case 'port-replies':
      return { table: 'filter', chain: F, spec: `-i ${r.bridge} ! -o ${r.bridge} ${est}` };
    case 'isolate':
      return { table: 'filter', chain: F, spec: `-i ${r.from} -o ${r.to} -j DROP`, first: true };
    case 'masquerade':
      return { table: 'nat', chain: c.post, spec: `-s ${r.subnet} ! -o ${r.bridge} -j MASQUERADE` };
    case 'localnet':
      return { table: 'nat', chain: c.post, spec: `-s 127.0.0.0/8 -o ${r.bridge} -j MASQUERADE` };
    case 'localhost-guard':
      return {
        table: 'filter',
        chain: c.input,
        spec: `-d 127.0.0.0/8 -i ${r.bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
      };
    case 'dnat':
      return {
        table: 'nat',
        chain: c.dnat,
        spec: `${r.hostIp ? `-d ${host(r.hostIp)} ` : ''}${tcpudp(r.proto, r.hostPort)} -j DNAT --to-destination ${to(r.ctrIp, r.ctrPort)}`,
      };
    case 'hairpin':
      return {
        table: 'nat',
        chain: c.post,
        spec: `-s ${r.subnet} -d ${host(r.ctrIp)} -o ${r.bridge} ${tcpudp(r.proto, r.ctrPort)} -m conntrack --ctstate DNAT -j MASQUERADE`,
      };
    case 'port-forward':
      return {
        table: 'filter',
        chain: F,
        spec: `-d ${host(r.ctrIp)} ! -i ${r.bridge} -o ${r.bridge} ${tcpudp(r.proto, r.ctrPort)} -j ACCEPT`,
      };
  }
}

/** What one family's rule set holds, from iptables-save output: chains, and each rule with how often it is there. */
export function parseSave(text: string): { chains: Set<string>; lines: Set<string>; counts: Map<string, number> } {
  const chains = new Set<string>();
  const counts = new Map<string, number>();
  let table = '';
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (l.startsWith('*')) table = l.slice(1);
    else if (l.startsWith(':')) chains.add(`${table} ${l.slice(1).split(' ')[0]}`);
    else if (l.startsWith('-A ')) counts.set(`${table} ${l.slice(3)}`, (counts.get(`${table} ${l.slice(3)}`) ?? 0) + 1);
  }
  return { chains, lines: new Set(counts.keys()), counts };
}

/** Second and later copies of pipewright's own rules and hooks (a crash between writes): all but one go. */
function duplicateDeletes(
  have: ReturnType<typeof parseSave>,
  ours: Set<string>,
  hooked: Hook[],
): Record<Table, string[]> {
  const hooks = new Set(hooked.map((h) => `${h.table} ${h.chain} ${h.spec}`));
  const out: Record<Table, string[]> = { filter: [], nat: [] };
  for (const [line, n] of have.counts) {
    const [table, chain] = line.split(' ');
    if (n < 2 || (table !== 'filter' && table !== 'nat') || !(ours.has(chain) || hooks.has(line))) continue;
    for (let i = 1; i < n; i++) out[table].push(`-D ${line.slice(table.length + 1)}`);
  }
  return out;
}

/** The restore text that turns `saved` into exactly `wanted` within pipewright's chains, or null. */
export function restoreDelta(
  saved: string,
  wanted: Line[],
  family: Family = 4,
  c: IptablesChains = CHAINS,
): string | null {
  const have = parseSave(saved);
  const key = (l: { table: string; chain: string; spec: string }) => `${l.table} ${l.chain} ${l.spec}`;
  const wantedKeys = new Set(wanted.map(key));
  const ours = new Set<string>(Object.values(c));
  const hooks = hooksOf(c, family);
  const byTable = duplicateDeletes(have, ours, hooks);
  const needed = new Set(wanted.map((l) => `${l.table} ${l.chain}`));
  for (const chainKey of new Set(hooks.map((h) => `${h.table} ${h.jumpTo}`))) {
    const [table, chain] = chainKey.split(' ') as [Table, string];
    if (needed.has(chainKey) && !have.chains.has(chainKey)) byTable[table].unshift(`:${chain} - [0:0]`);
  }
  for (const line of have.lines) {
    const [table, chain] = line.split(' ');
    if (ours.has(chain) && (table === 'filter' || table === 'nat') && !wantedKeys.has(line))
      byTable[table].push(`-D ${line.slice(table.length + 1)}`);
  }
  for (const l of wanted) {
    if (!have.lines.has(key(l)))
      byTable[l.table].push(l.first ? `-I ${l.chain} 1 ${l.spec}` : `-A ${l.chain} ${l.spec}`);
  }
  for (const h of hooks) {
    const hooked = have.lines.has(`${h.table} ${h.chain} ${h.spec}`);
    const chainKey = `${h.table} ${h.jumpTo}`;
    if (needed.has(chainKey) && !hooked)
      byTable[h.table].push(h.first ? `-I ${h.chain} 1 ${h.spec}` : `-A ${h.chain} ${h.spec}`);
    if (!needed.has(chainKey) && hooked) byTable[h.table].push(`-D ${h.chain} ${h.spec}`);
  }
  for (const chain of new Set(hooks.map((h) => `${h.table} ${h.jumpTo}`))) {
    const [table, name] = chain.split(' ') as [Table, string];
    if (!needed.has(chain) && have.chains.has(chain)) byTable[table].push(`-X ${name}`);
  }
  const parts = (['filter', 'nat'] as const)
    .filter((t) => byTable[t].length)
    .map((t) => [`*${t}`, ...byTable[t], 'COMMIT'].join('\n'));
  return parts.length ? parts.join('\n') + '\n' : null;
}

export const TOOLS = { 4: ['iptables-save', 'iptables-restore'], 6: ['ip6tables-save', 'ip6tables-restore'] } as const;
const XTABLES_WAIT_SECONDS = '10';

/** The nftables backend marks what it accepts; this one rule lets it through an iptables FORWARD that drops. */
export const NFT_ACCEPT_MARK = '0x100000';
const markLine = (c: IptablesChains): Line => ({
  table: 'filter',
  chain: c.forward,
  spec: `-m mark --mark ${NFT_ACCEPT_MARK}/${NFT_ACCEPT_MARK} -j ACCEPT`,
});

function linesOf(rules: Rule[], family: Family, c: IptablesChains): Line[] {
  return rules.map((r) => renderRule(r, family, c)).filter((l): l is Line => l !== null);
}

const hasFilterTable = (saved: string) => /^\*filter$/m.test(saved);

/**
 * What to hold, given what the kernel holds. IPv6 forward accepts are needed only where an ip6
 * filter table exists (another program may drop there; without one nothing drops); its published
 * ports' NAT rules always.
 */
export function wantedLines(rules: Rule[], family: Family, saved: string, nftMark: boolean, c: IptablesChains): Line[] {
  if (nftMark) return rules.length && hasFilterTable(saved) ? [markLine(c)] : [];
  const lines = linesOf(rules, family, c);
  return family === 6 && !hasFilterTable(saved) ? lines.filter((l) => l.table !== 'filter') : lines;
}

/**
 * Built-in chains and tables pipewright's writes created, as "filter INPUT" / "filter" (IPv6:
 * "ip6/nat OUTPUT" / "ip6/nat"); the caller keeps them.
 */
export type CreatedBuiltins = Set<string>;

const KEY_PREFIX: Record<Family, string> = { 4: '', 6: 'ip6/' };
const NFT_FAMILY: Record<Family, string> = { 4: 'ip', 6: 'ip6' };

/**
 * A family's filter and nat tables as nft sees them (none with legacy iptables): each table's
 * number of chains, and its base chains with their rule counts, by their CreatedBuiltins keys.
 */
async function nftBuiltins(
  family: Family,
  log?: StepLog,
): Promise<{ tables: Map<string, number>; chains: Map<string, { rules: number; policy: string }> }> {
  const tables = new Map<string, number>();
  const chains = new Map<string, { rules: number; policy: string }>();
  for (const name of ['filter', 'nat']) {
    const r = await run('nft', ['-j', 'list', 'table', NFT_FAMILY[family], name], { allowFailure: true, log });
    if (r.exitCode !== 0) continue;
    const table = `${KEY_PREFIX[family]}${name}`;
    const items = JSON.parse(r.stdout).nftables as NftItem[];
    tables.set(table, items.filter((i) => i.chain).length);
    for (const item of items) {
      if (item.chain?.hook)
        chains.set(`${table} ${item.chain.name}`, { rules: 0, policy: item.chain.policy ?? 'accept' });
      const c = item.rule && chains.get(`${table} ${item.rule.chain}`);
      if (c) c.rules++;
    }
  }
  return { tables, chains };
}

type NftItem = { chain?: { name: string; hook?: string; policy?: string }; rule?: { chain: string } };

/**
 * Restores a delta that adds or removes a hook, remembering the built-ins it created and dropping
 * created ones left empty.
 */
async function restoreTrackingBuiltins(
  family: Family,
  delta: string,
  created: CreatedBuiltins,
  log?: StepLog,
): Promise<void> {
  const before = await nftBuiltins(family, log);
  await restore(family, delta, log);
  const after = await nftBuiltins(family, log);
  for (const t of after.tables.keys()) if (!before.tables.has(t)) created.add(t);
  for (const c of after.chains.keys()) if (!before.chains.has(c)) created.add(c);
  const prefix = KEY_PREFIX[family];
  const mine = [...created].filter((k) => (family === 6) === k.startsWith(KEY_PREFIX[6]));
  const nftName = (key: string) => [NFT_FAMILY[family], ...key.slice(prefix.length).split(' ')];
  for (const key of mine.filter((k) => k.includes(' '))) {
    const chain = after.chains.get(key);
    if (!chain) created.delete(key);
    else if (chain.rules === 0 && chain.policy === 'accept') {
      await run('nft', ['delete', 'chain', ...nftName(key)], { log });
      const table = key.split(' ')[0];
      after.tables.set(table, after.tables.get(table)! - 1);
      created.delete(key);
    }
  }
  // A table pipewright's write created goes once it has no chain left at all (its own went with their last rule).
  for (const table of mine.filter((k) => !k.includes(' '))) {
    const chains = after.tables.get(table);
    if (chains === undefined) created.delete(table);
    else if (chains === 0) {
      await run('nft', ['delete', 'table', ...nftName(table)], { log });
      created.delete(table);
    }
  }
}

/** A hook added (-A, -I) or deleted: the write may create or empty a built-in chain. */
const BUILTIN_HOOK = /^-[AID] (INPUT|FORWARD|PREROUTING|OUTPUT|POSTROUTING) /m;

/** What iptables-save would print if the kernel held exactly these lines (and their chains and hooks). */
function savedForm(lines: Line[], family: Family, c: IptablesChains): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const mine = lines.filter((l) => l.table === table);
    const chains = new Set(mine.map((l) => l.chain));
    out.push(`*${table}`, ...[...chains].map((c) => `:${c} - [0:0]`));
    out.push(
      ...hooksOf(c, family)
        .filter((h) => h.table === table && chains.has(h.jumpTo))
        .map((h) => `-A ${h.chain} ${h.spec}`),
    );
    out.push(...mine.map((l) => `-A ${l.chain} ${l.spec}`), 'COMMIT');
  }
  return out.join('\n');
}

async function restore(family: Family, delta: string, log?: StepLog): Promise<void> {
  try {
    await run(TOOLS[family][1], ['-w', XTABLES_WAIT_SECONDS, '--noflush'], { input: delta, log });
  } catch (err) {
    if (/xtables lock/i.test((err as Error).message)) {
      throw new PipewrightError(
        `another program held the xtables lock for over ${XTABLES_WAIT_SECONDS} s; nothing was changed, retry`,
      );
    }
    throw err;
  }
}

/**
 * Full apply: reads each family's rule set once and writes only the difference (at most one
 * restore per family). `firewall sync` and the fallback of a failed delta use it.
 * `nftMark`: the nftables backend's single mark-accept rule instead of the rules, and only where
 * an iptables filter table exists (another program's FORWARD may drop there).
 */
export async function applyIptables(
  rules: Rule[],
  log?: StepLog,
  opts: { nftMark?: boolean; created?: CreatedBuiltins; chains?: IptablesChains } = {},
): Promise<void> {
  for (const family of [4, 6] as const) {
    await applyFamily(family, rules, log, Boolean(opts.nftMark), opts.created ?? new Set(), opts.chains ?? CHAINS);
  }
}

async function applyFamily(
  family: Family,
  rules: Rule[],
  log: StepLog | undefined,
  nftMark: boolean,
  created: CreatedBuiltins,
  c: IptablesChains,
): Promise<void> {
  // No iptables installed: no iptables FORWARD chain can drop what nftables accepted.
  if (nftMark && !toolInstalled(TOOLS[family][0])) return;
  const saved = (await run(TOOLS[family][0], [], { log })).stdout;
  await write(family, restoreDelta(saved, wantedLines(rules, family, saved, nftMark, c), family, c), created, log);
}

/** Writes that add or remove a hook in a built-in chain track what they create. */
async function write(family: Family, delta: string | null, created: CreatedBuiltins, log?: StepLog): Promise<void> {
  if (!delta) return;
  if (BUILTIN_HOOK.test(delta)) await restoreTrackingBuiltins(family, delta, created, log);
  else await restore(family, delta, log);
}

/**
 * Delta apply: from the rules the store held before a change to those it holds after, with no
 * read of the rule set (one restore for a family that changes, none otherwise). It assumes the
 * kernel held `before`; if it did not, the restore fails whole and the caller falls back to a full apply.
 */
export async function applyIptablesDelta(
  before: Rule[],
  after: Rule[],
  log?: StepLog,
  created: CreatedBuiltins = new Set(),
  c: IptablesChains = CHAINS,
): Promise<void> {
  const delta = (family: Family) =>
    restoreDelta(savedForm(linesOf(before, family, c), family, c), linesOf(after, family, c), family, c);
  await write(4, delta(4), created, log);
  // Which IPv6 rules to write depends on the kernel (wantedLines): a change there reads ip6tables-save.
  if (delta(6)) await applyFamily(6, after, log, false, created, c);
}
