/**
 * The iptables backend. Rules go into pipewright's own chains, hooked once from the built-in ones:
 *
 *   filter FORWARD     -> PIPEWRIGHT-FORWARD       (IPv4; IPv6 where an ip6 filter table exists)
 *   filter INPUT       -> PIPEWRIGHT-INPUT         (guests may not reach the host's 127.0.0.0/8)
 *   nat    PREROUTING  -> PIPEWRIGHT-DNAT          (-m addrtype --dst-type LOCAL)
 *   nat    OUTPUT      -> PIPEWRIGHT-DNAT          (the host itself, 127.0.0.1 included)
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
import type { StepLog } from '../../util/log.js';
import { HOST_FIREWALL, type IptablesChains } from './names.js';
import type { Rule } from './rules.js';

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

type Hook = { table: Table; chain: string; spec: string; jumpTo: string; first?: boolean };

/** The jumps from the built-in chains into a store's own. */
const hooksOf = (c: IptablesChains): Hook[] => [
  { table: 'filter', chain: 'FORWARD', spec: `-j ${c.forward}`, jumpTo: c.forward, first: true },
  { table: 'filter', chain: 'INPUT', spec: `-j ${c.input}`, jumpTo: c.input, first: true },
  { table: 'nat', chain: 'PREROUTING', spec: `-m addrtype --dst-type LOCAL -j ${c.dnat}`, jumpTo: c.dnat },
  { table: 'nat', chain: 'OUTPUT', spec: `-m addrtype --dst-type LOCAL -j ${c.dnat}`, jumpTo: c.dnat },
  { table: 'nat', chain: 'POSTROUTING', spec: `-j ${c.post}`, jumpTo: c.post },
];

const tcpudp = (proto: string, port: number | string) => `-p ${proto} -m ${proto} --dport ${port}`;

/** The iptables-save form of a rule, for one family (null: the rule has no IPv6 form). */
export function renderRule(r: Rule, family: 4 | 6, c: IptablesChains = CHAINS): Line | null {
  const F = c.forward;
  const est = '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT';
  if (r.type === 'bridge-internal')
    return { table: 'filter', chain: F, spec: `-i ${r.bridge} -o ${r.bridge} -j ACCEPT` };
  if (family === 6) return null; // NAT and port publishing are IPv4 for now
  switch (r.type) {
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
        spec: `${r.hostIp ? `-d ${r.hostIp}/32 ` : ''}${tcpudp(r.proto, r.hostPort)} -j DNAT --to-destination ${r.ctrIp}:${r.ctrPort}`,
      };
    case 'hairpin':
      return {
        table: 'nat',
        chain: c.post,
        spec: `-s ${r.subnet} -d ${r.ctrIp}/32 -o ${r.bridge} ${tcpudp(r.proto, r.ctrPort)} -m conntrack --ctstate DNAT -j MASQUERADE`,
      };
    case 'port-forward':
      return {
        table: 'filter',
        chain: F,
        spec: `-d ${r.ctrIp}/32 ! -i ${r.bridge} -o ${r.bridge} ${tcpudp(r.proto, r.ctrPort)} -j ACCEPT`,
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
export function restoreDelta(saved: string, wanted: Line[], c: IptablesChains = CHAINS): string | null {
  const have = parseSave(saved);
  const key = (l: { table: string; chain: string; spec: string }) => `${l.table} ${l.chain} ${l.spec}`;
  const wantedKeys = new Set(wanted.map(key));
  const ours = new Set<string>(Object.values(c));
  const hooks = hooksOf(c);
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

const TOOLS = { 4: ['iptables-save', 'iptables-restore'], 6: ['ip6tables-save', 'ip6tables-restore'] } as const;
const XTABLES_WAIT_SECONDS = '10';

/** The nftables backend marks what it accepts; this one rule lets it through an iptables FORWARD that drops. */
export const NFT_ACCEPT_MARK = '0x100000';
const markLine = (c: IptablesChains): Line => ({
  table: 'filter',
  chain: c.forward,
  spec: `-m mark --mark ${NFT_ACCEPT_MARK}/${NFT_ACCEPT_MARK} -j ACCEPT`,
});

function linesOf(rules: Rule[], family: 4 | 6, c: IptablesChains): Line[] {
  return rules.map((r) => renderRule(r, family, c)).filter((l): l is Line => l !== null);
}

const hasFilterTable = (saved: string) => /^\*filter$/m.test(saved);

/**
 * What to hold, given what the kernel holds. IPv6 rules are forward accepts only, needed only
 * where an ip6 filter table exists (another program may drop there; without one nothing drops).
 */
function wantedLines(rules: Rule[], family: 4 | 6, saved: string, nftMark: boolean, c: IptablesChains): Line[] {
  if (nftMark) return rules.length && hasFilterTable(saved) ? [markLine(c)] : [];
  if (family === 6 && !hasFilterTable(saved)) return [];
  return linesOf(rules, family, c);
}

/** Built-in chains and tables pipewright's writes created, as "filter INPUT" / "filter"; the caller keeps them. */
export type CreatedBuiltins = Set<string>;

/**
 * The ip family's filter and nat tables as nft sees them (none with legacy iptables): each table's
 * number of chains, and its base chains with their rule counts.
 */
async function nftBuiltins(
  log?: StepLog,
): Promise<{ tables: Map<string, number>; chains: Map<string, { rules: number; policy: string }> }> {
  const tables = new Map<string, number>();
  const chains = new Map<string, { rules: number; policy: string }>();
  for (const table of ['filter', 'nat']) {
    const r = await run('nft', ['-j', 'list', 'table', 'ip', table], { allowFailure: true, log });
    if (r.exitCode !== 0) continue;
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
async function restoreTrackingBuiltins(delta: string, created: CreatedBuiltins, log?: StepLog): Promise<void> {
  const before = await nftBuiltins(log);
  await restore(4, delta, log);
  const after = await nftBuiltins(log);
  for (const t of after.tables.keys()) if (!before.tables.has(t)) created.add(t);
  for (const c of after.chains.keys()) if (!before.chains.has(c)) created.add(c);
  for (const key of [...created].filter((k) => k.includes(' '))) {
    const chain = after.chains.get(key);
    if (!chain) created.delete(key);
    else if (chain.rules === 0 && chain.policy === 'accept') {
      const [table, name] = key.split(' ');
      await run('nft', ['delete', 'chain', 'ip', table, name], { log });
      after.tables.set(table, after.tables.get(table)! - 1);
      created.delete(key);
    }
  }
  // A table pipewright's write created goes once it has no chain left at all (its own went with their last rule).
  for (const table of [...created].filter((k) => !k.includes(' '))) {
    const chains = after.tables.get(table);
    if (chains === undefined) created.delete(table);
    else if (chains === 0) {
      await run('nft', ['delete', 'table', 'ip', table], { log });
      created.delete(table);
    }
  }
}

const BUILTIN_HOOK = /^-[ID] (INPUT|FORWARD|PREROUTING|OUTPUT|POSTROUTING) /m;

/** What iptables-save would print if the kernel held exactly these lines (and their chains and hooks). */
function savedForm(lines: Line[], c: IptablesChains): string {
  const out: string[] = [];
  for (const table of ['filter', 'nat'] as const) {
    const mine = lines.filter((l) => l.table === table);
    const chains = new Set(mine.map((l) => l.chain));
    out.push(`*${table}`, ...[...chains].map((c) => `:${c} - [0:0]`));
    out.push(
      ...hooksOf(c)
        .filter((h) => h.table === table && chains.has(h.jumpTo))
        .map((h) => `-A ${h.chain} ${h.spec}`),
    );
    out.push(...mine.map((l) => `-A ${l.chain} ${l.spec}`), 'COMMIT');
  }
  return out.join('\n');
}

async function restore(family: 4 | 6, delta: string, log?: StepLog): Promise<void> {
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
  family: 4 | 6,
  rules: Rule[],
  log: StepLog | undefined,
  nftMark: boolean,
  created: CreatedBuiltins,
  c: IptablesChains,
): Promise<void> {
  const saved = (await run(TOOLS[family][0], [], { log })).stdout;
  await write(family, restoreDelta(saved, wantedLines(rules, family, saved, nftMark, c), c), created, log);
}

/**
 * IPv4 writes that add or remove a hook in a built-in chain track what they create (IPv6 only
 * writes where a table exists).
 */
async function write(family: 4 | 6, delta: string | null, created: CreatedBuiltins, log?: StepLog): Promise<void> {
  if (!delta) return;
  if (family === 4 && BUILTIN_HOOK.test(delta)) await restoreTrackingBuiltins(delta, created, log);
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
  const delta = (family: 4 | 6) => restoreDelta(savedForm(linesOf(before, family, c), c), linesOf(after, family, c), c);
  await write(4, delta(4), created, log);
  // IPv6 changes only with a bridge's first or last guest; whether to write depends on the kernel (wantedLines).
  if (delta(6)) await applyFamily(6, after, log, false, created, c);
}
