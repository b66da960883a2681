/**
 * Brings the host's firewall (and the two sysctls NAT needs) to what the store says. Every
 * operation that changes networks, guests on bridges or ports ends with this; `firewall sync`
 * is the same call, after a reload or reboot wiped the rules. Idempotent: a second run changes
 * nothing. Serialized between pipewright processes (read-then-write of the rule set).
 */
import { existsSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { UsageError, describe } from '../util/errors.js';
import type { StepLog } from '../util/log.js';
import { silent } from '../util/log.js';
import { DEFAULT_STATE_DIR, toolInstalled } from '../util/paths.js';
import { createdBuiltins, firewallDirty, firewallState, setCreatedBuiltins, setFirewallDirty } from '../db/networks.js';
import { withLock } from '../db/lock.js';
import { bothEnded } from '../util/operation.js';
import type { Store } from '../db/store.js';
import type { FirewallState } from '../model/firewall-state.js';
import { familyOf } from '../model/publish.js';
import { firewallNames, type FirewallNames } from '../net/firewall/names.js';
import { desiredRules, portsTouched, type Rule } from '../net/firewall/rules.js';

export type FirewallKind = 'iptables' | 'nftables';
export type FirewallChoice = FirewallKind | 'auto';

export function checkFirewallChoice(value: string): FirewallChoice {
  if (value === 'iptables' || value === 'nftables' || value === 'auto') return value;
  throw new UsageError(`firewall "${value}" must be iptables, nftables or auto`);
}

/** auto: nftables when the `nft` tool is installed, else iptables (a look in TOOL_PATH, no process). */
export function resolveFirewall(choice: FirewallChoice = 'auto'): FirewallKind {
  if (choice !== 'auto') return choice;
  return toolInstalled('nft') ? 'nftables' : 'iptables';
}

function writeSysctl(path: string, value: string, log: StepLog): void {
  if (!existsSync(path) || readFileSync(path, 'utf8').trim() === value) return;
  log.step(`echo ${value} > ${path}`);
  writeFileSync(path, value);
}

/**
 * Forwarding on for NAT (never switched off again: other software may rely on it), IPv6's too
 * once an IPv6 port is published, and route_localnet on bridges with IPv4 published ports, so
 * 127.0.0.1:<port> can be DNATed to a guest.
 */
function applySysctls(state: FirewallState, log: StepLog): void {
  const v4 = state.ports.filter((p) => familyOf(p.ctrIp) === 4);
  const nat = v4.length > 0 || state.bridges.some((b) => b.network?.masquerade);
  if (nat) writeSysctl('/proc/sys/net/ipv4/ip_forward', '1', log);
  if (v4.length < state.ports.length) writeSysctl('/proc/sys/net/ipv6/conf/all/forwarding', '1', log);
  for (const bridge of new Set(v4.map((p) => p.bridge))) {
    writeSysctl(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, '1', log);
  }
}

/** A backend's two writes; `created` is the store's memory of built-in chains iptables-nft made for pipewright. */
interface Backend {
  full(rules: Rule[], log: StepLog, created: Set<string>): Promise<void>;
  delta(before: Rule[], after: Rule[], log: StepLog, created: Set<string>): Promise<void>;
  /**
   * Its delta needs the per-port rules only of the ports a change touched (nftables: they are set
   * elements). iptables needs them all: whether its chains and their hooks stay depends on every rule.
   */
  portScoped: boolean;
}

/** A store's firewall objects are named after its state dir (names.ts): stores never write each other's. */
export const firewallNamesOf = (store: Store): FirewallNames =>
  firewallNames(resolved(store.stateDir), resolved(DEFAULT_STATE_DIR));

/** A directory with its symlinks followed (itself where it does not exist). */
function resolved(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

async function backend(kind: FirewallKind, n: FirewallNames): Promise<Backend> {
  if (kind === 'iptables') {
    const { applyIptables, applyIptablesDelta } = await import('../net/firewall/iptables.js');
    return {
      full: (rules, log, created) => applyIptables(rules, log, { created, chains: n.chains }),
      delta: (before, after, log, created) => applyIptablesDelta(before, after, log, created, n.chains),
      portScoped: false,
    };
  }
  const { applyNftables, applyNftablesDelta } = await import('../net/firewall/nftables.js');
  return {
    full: (rules, log) => applyNftables(rules, log, n),
    delta: (before, after, log) => applyNftablesDelta(before, after, log, n),
    portScoped: true,
  };
}

/**
 * Runs a firewall write with the store's memory of the built-in chains iptables-nft made for
 * pipewright, and keeps what the write changed in it (also when the write fails half-way).
 */
async function trackingBuiltins(store: Store, write: (created: Set<string>) => Promise<void>): Promise<void> {
  const created = createdBuiltins(store);
  const before = [...created].sort().join();
  try {
    await write(created);
  } finally {
    if ([...created].sort().join() !== before) store.tx(() => setCreatedBuiltins(store, created));
  }
}

export interface SyncOptions {
  firewall?: FirewallChoice;
  log?: StepLog;
  /**
   * Other kernel work that may go on while the rules are written, started once the store change
   * is committed: a veth's delete and an nftables element's delete each wait for RCU grace
   * periods, which overlap (41 -> 25 ms for the two, measured). Its failure is thrown once both ended.
   */
  alongside?: () => Promise<void>;
}

/**
 * Changes the store with `mutate` and the firewall with it, as one step under the host's firewall
 * lock: the rules before and after are derived from the store and only the difference is written,
 * without reading the rule set (nothing at all when they are the same). If the kernel did not hold
 * what the store said (a reload, a crash), that write fails whole and a full sync follows.
 *
 * The store change is marked dirty in its own transaction and cleared once the kernel has it: if
 * the write fails, or this process dies in between, the next change syncs in full instead of
 * trusting a delta from a state the kernel never reached.
 */
export async function changeFirewall(store: Store, mutate: () => void, opts: SyncOptions = {}): Promise<void> {
  const log = opts.log ?? silent;
  const apply = await backend(resolveFirewall(opts.firewall), firewallNamesOf(store));
  await withLock(store.stateDir, 'firewall', async () => {
    const wasDirty = firewallDirty(store);
    const was = firewallState(store);
    store.tx(() => {
      mutate();
      setFirewallDirty(store, true);
    });
    await bothEnded(() => writeChange(store, apply, was, wasDirty, log), opts.alongside);
  });
}

/** The kernel's part of a change: the difference of the rules written (or a full sync), then the store marked clean. */
async function writeChange(store: Store, apply: Backend, was: FirewallState, wasDirty: boolean, log: StepLog) {
  const state = firewallState(store);
  // With 1,000 ports published, the rules of them all cost an attach ~35 ms to derive and compare.
  const scope = apply.portScoped ? portsTouched(was.ports, state.ports) : undefined;
  const [before, after] = [desiredRules(was, scope), desiredRules(state, scope)];
  // A change no rule follows (a macvlan guest, a record's state): the kernel is not read at all,
  // so the lock is held for a moment, not for an iptables-save (measured: seconds in a busy VM).
  if (wasDirty || JSON.stringify(before) !== JSON.stringify(after)) {
    applySysctls(state, log);
    await trackingBuiltins(store, async (created) => {
      const full = () => apply.full(desiredRules(state), log, created);
      if (wasDirty) {
        log.step('an earlier change did not reach the firewall; full sync');
        await full();
      } else {
        await apply.delta(before, after, log, created).catch(async (err) => {
          log.step(`the firewall did not hold what the store says (${describe(err)}); full sync`);
          await full();
        });
      }
    });
  }
  store.tx(() => setFirewallDirty(store, false));
}

/**
 * Starts the tool the next firewall write runs, so that it loads while the caller plumbs: nft,
 * which reads its whole script before it looks at the kernel (-2 ms for an attach -p, measured).
 * iptables-restore's arguments depend on the change: nothing is started for it. Returns the
 * release, for when the operation ends (a tool no write took then ends, having done nothing).
 */
export async function startFirewallWrite(ctx: { firewall: FirewallChoice }): Promise<() => Promise<void>> {
  if (resolveFirewall(ctx.firewall) !== 'nftables') return async () => {};
  return (await import('../net/firewall/nftables.js')).startNftWrite();
}

/** changeFirewall as an operation makes it: with its context's store, backend and step log. */
export function changeFirewallIn(
  ctx: { store: Store; firewall: FirewallChoice; log: StepLog },
  mutate: () => void,
  alongside?: () => Promise<void>,
): Promise<void> {
  return changeFirewall(ctx.store, mutate, { firewall: ctx.firewall, log: ctx.log, alongside });
}

/**
 * `firewall sync`: the whole rule set from the store, after reading what the kernel holds.
 * Idempotent. It also clears pipewright's rules from the other backend (after a switch).
 */
export async function syncFirewall(store: Store, opts: SyncOptions = {}): Promise<Rule[]> {
  const log = opts.log ?? silent;
  const kind = resolveFirewall(opts.firewall);
  const names = firewallNamesOf(store);
  const apply = await backend(kind, names);
  return withLock(store.stateDir, 'firewall', async () => {
    const state = firewallState(store);
    const rules = desiredRules(state);
    applySysctls(state, log);
    // The nftables apply already brings iptables to its mark rule or nothing; iptables must clear nft.
    if (kind === 'iptables') await (await import('../net/firewall/nftables.js')).clearNftables(log, names);
    await trackingBuiltins(store, (created) => apply.full(rules, log, created));
    store.tx(() => setFirewallDirty(store, false));
    return rules;
  });
}
