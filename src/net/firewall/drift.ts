/**
 * Whether the kernel still holds pipewright's firewall as the store wants it, read without writing
 * anything: the self-healing daemon asks on every rule set change, and a write of its own would be
 * a change again.
 *
 *   nftables  pipewright's tables, chains and sets exist, and each chain holds as many rules and
 *             each set as many elements as a full apply writes: a flushed rule set, a deleted
 *             table, chain, rule or element all show (a rule replaced in place by another program
 *             does not); and iptables holds its one mark rule where it needs it
 *   iptables  a full apply would write nothing
 */
import { run, toolFailure } from '../../util/exec.js';
import type { StepLog } from '../../util/log.js';
import { restoreDelta, TOOLS, wantedLines } from './iptables.js';
import type { FirewallNames } from './names.js';
import { fullScript } from './nftables.js';
import type { Rule } from './rules.js';

/** "table <family> <name>", "chain <family> <table> <name>" (its rules), "set <family> <table> <name>" (its elements). */
type Shape = Map<string, number>;

const add = (shape: Shape, key: string, n: number) => shape.set(key, (shape.get(key) ?? 0) + n);

/** The shape a full apply's nft script makes. */
export function scriptShape(script: string[]): Shape {
  const shape: Shape = new Map();
  for (const line of script) {
    const [verb, obj, family, table, name] = line.split(' ');
    if (verb !== 'add') continue;
    if (obj === 'table') shape.set(`table ${family} ${table}`, 0);
    if (obj === 'chain') add(shape, `chain ${family} ${table} ${name}`, 0);
    if (obj === 'rule') add(shape, `chain ${family} ${table} ${name}`, 1);
    if (obj === 'set' || obj === 'map') add(shape, `set ${family} ${table} ${name}`, 0);
    if (obj === 'element') {
      const inner = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}')).trim();
      add(shape, `set ${family} ${table} ${name}`, inner ? inner.split(',').length : 0);
    }
  }
  return shape;
}

type NftItem = Record<string, { family: string; table?: string; name?: string; chain?: string; elem?: unknown[] }>;

/** The same shape, as `nft -j list ruleset` or `list table` shows it, for the tables `wanted` names. */
export function rulesetShape(json: string, wanted: Shape): Shape {
  const shape: Shape = new Map();
  const tables = new Set([...wanted.keys()].filter((k) => k.startsWith('table ')).map((k) => k.slice(6)));
  for (const item of (JSON.parse(json) as { nftables: NftItem[] }).nftables) {
    const [[kind, o]] = Object.entries(item);
    const table = kind === 'table' ? `${o.family} ${o.name}` : `${o.family} ${o.table}`;
    if (!tables.has(table)) continue;
    if (kind === 'table') shape.set(`table ${table}`, 0);
    if (kind === 'chain') add(shape, `chain ${table} ${o.name}`, 0);
    if (kind === 'rule') add(shape, `chain ${table} ${o.chain}`, 1);
    if (kind === 'set' || kind === 'map') add(shape, `set ${table} ${o.name}`, o.elem?.length ?? 0);
  }
  return shape;
}

/** The first difference between two shapes, in words; null when the kernel has what is wanted. */
export function shapeDiff(wanted: Shape, have: Shape): string | null {
  for (const [key, n] of wanted) {
    const got = have.get(key);
    if (got === undefined) return `${key} is missing`;
    if (got !== n) return `${key} holds ${got} ${key.startsWith('set') ? 'elements' : 'rules'}, not ${n}`;
  }
  return null;
}

/**
 * The store's two tables, each listed alone: the whole ruleset also holds other programs' rules
 * (Docker's iptables-nft tables: thousands of rules beside a fleet of published ports), and the
 * daemon checks on every commit.
 */
async function nftablesDrift(rules: Rule[], n: FirewallNames, log?: StepLog): Promise<string | null> {
  const wanted = scriptShape(fullScript(rules, n));
  const listed = await Promise.all([n.nft4, n.nft6].map((table) => listTable(table, log)));
  return shapeDiff(wanted, new Map(listed.flatMap((json) => (json === null ? [] : [...rulesetShape(json, wanted)]))));
}

/**
 * A table's JSON listing, or null where it does not exist. Any other failure throws: taken for a
 * missing table, it would make a full sync, whose commit would start the next check at once.
 */
async function listTable(table: string, log?: StepLog): Promise<string | null> {
  const args = ['-j', 'list', 'table', ...table.split(' ')];
  const res = await run('nft', args, { allowFailure: true, log });
  if (res.exitCode === 0) return res.stdout;
  if (/No such file or directory/.test(res.stderr)) return null;
  throw toolFailure('nft', args, res, args.length);
}

/**
 * Every table is saved: whether a filter table exists decides whether the mark rule is wanted, and
 * `iptables-save -t filter` prints an empty one where none exists (iptables-nft).
 */
async function iptablesDrift(rules: Rule[], nftMark: boolean, n: FirewallNames, log?: StepLog): Promise<string | null> {
  for (const family of [4, 6] as const) {
    const saved = (await run(TOOLS[family][0], [], { log })).stdout;
    if (restoreDelta(saved, wantedLines(rules, family, saved, nftMark, n.chains), family, n.chains))
      return `${TOOLS[family][0]} lacks pipewright's rules or holds others in its chains`;
  }
  return null;
}

/** What differs between the kernel and `rules` (one line), or null; nothing is written. */
export async function firewallDrift(
  kind: 'iptables' | 'nftables',
  rules: Rule[],
  n: FirewallNames,
  log?: StepLog,
): Promise<string | null> {
  if (kind === 'iptables') return iptablesDrift(rules, false, n, log);
  return (await nftablesDrift(rules, n, log)) ?? (await iptablesDrift(rules, true, n, log));
}

/** Whether iptables' changes are nftables commits (iptables-nft), which send events; iptables-legacy's send none. */
export async function iptablesSendsEvents(): Promise<boolean> {
  const res = await run('iptables', ['-V'], { allowFailure: true });
  return /nf_tables/.test(res.stdout);
}
