/**
 * Brings the host's firewall (and the two sysctls NAT needs) to what the store says. Every
 * operation that changes networks, guests on bridges or ports ends with this; `firewall sync`
 * is the same call, after a reload or reboot wiped the rules. Idempotent: a second run changes
 * nothing. Serialized between pipewright processes (read-then-write of the rule set).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { UsageError } from '../../errors.js';
import { run } from '../../exec.js';
import type { StepLog } from '../../log.js';
import { silent } from '../../log.js';
import { firewallState } from '../../store/firewall.js';
import { withLock } from '../../store/lock.js';
import type { Store } from '../../store/store.js';
import { applyIptables } from './iptables.js';
import { desiredRules, type FirewallState, type Rule } from './rules.js';

export type FirewallKind = 'iptables' | 'nftables';
export type FirewallChoice = FirewallKind | 'auto';

export function checkFirewallChoice(value: string): FirewallChoice {
  if (value === 'iptables' || value === 'nftables' || value === 'auto') return value;
  throw new UsageError(`firewall "${value}" must be iptables, nftables or auto`);
}

/** auto: nftables when `nft` answers, else iptables. */
export async function resolveFirewall(choice: FirewallChoice = 'auto'): Promise<FirewallKind> {
  if (choice !== 'auto') return choice;
  const res = await run('nft', ['--version'], { allowFailure: true });
  return res.exitCode === 0 ? 'nftables' : 'iptables';
}

function writeSysctl(path: string, value: string, log: StepLog): void {
  if (!existsSync(path) || readFileSync(path, 'utf8').trim() === value) return;
  log.step(`echo ${value} > ${path}`);
  writeFileSync(path, value);
}

/**
 * Forwarding on for NAT (never switched off again: other software may rely on it), and
 * route_localnet on bridges with published ports, so 127.0.0.1:<port> can be DNATed to a guest.
 */
function applySysctls(state: FirewallState, log: StepLog): void {
  const nat = state.ports.length > 0 || state.bridges.some((b) => b.network?.masquerade);
  if (nat) writeSysctl('/proc/sys/net/ipv4/ip_forward', '1', log);
  for (const bridge of new Set(state.ports.map((p) => p.bridge))) {
    writeSysctl(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1', log);
  }
}

async function applyRules(kind: FirewallKind, rules: Rule[], log: StepLog): Promise<void> {
  if (kind === 'iptables') return applyIptables(rules, log);
  const { applyNftables } = await import('./nftables.js');
  await applyNftables(rules, log);
}

export interface SyncOptions {
  firewall?: FirewallChoice;
  log?: StepLog;
  /** Also clear pipewright's nftables tables when iptables is the backend (after switching). */
  exclusive?: boolean;
}

export async function syncFirewall(store: Store, opts: SyncOptions = {}): Promise<Rule[]> {
  const log = opts.log ?? silent;
  const kind = await resolveFirewall(opts.firewall);
  return withLock(store.stateDir, 'firewall', async () => {
    const state = firewallState(store);
    const rules = desiredRules(state);
    applySysctls(state, log);
    // (nftables needs no such step: its apply already brings iptables to the mirror set or nothing.)
    if (opts.exclusive && kind === 'iptables') await (await import('./nftables.js')).clearNftables(log);
    await applyRules(kind, rules, log);
    return rules;
  });
}
