/**
 * Lets guests on a pipewright bridge reach each other where the FORWARD policy is DROP (Docker
 * sets it, and br_netfilter sends bridged frames through it). The accept rules live in our own
 * chain, hooked once from FORWARD; other software's rules are never flushed or reordered.
 * Each change is one `iptables-restore --noflush` call per family, after one read of the table.
 */
import { run } from '../../exec.js';
import type { StepLog } from '../../log.js';

export const FORWARD_CHAIN = 'PIPEWRIGHT-FORWARD';
const XTABLES_WAIT_SECONDS = '10';

const FAMILIES = [
  { save: 'iptables-save', restore: 'iptables-restore' },
  { save: 'ip6tables-save', restore: 'ip6tables-restore' },
] as const;

function bridgeRule(bridge: string): string {
  return `-A ${FORWARD_CHAIN} -i ${bridge} -o ${bridge} -j ACCEPT`;
}

/** The restore text that brings the current filter table to the wanted state, or null if nothing is missing. */
export function forwardDelta(saved: string, bridge: string, wanted: boolean): string | null {
  const lines = new Set(saved.split('\n').map((l) => l.trim()));
  const hasChain = [...lines].some((l) => l.startsWith(`:${FORWARD_CHAIN} `));
  const hasRule = lines.has(bridgeRule(bridge));
  const out: string[] = [];
  if (wanted) {
    if (!hasChain) out.push(`:${FORWARD_CHAIN} - [0:0]`);
    if (!lines.has(`-A FORWARD -j ${FORWARD_CHAIN}`)) out.push(`-I FORWARD 1 -j ${FORWARD_CHAIN}`);
    if (!hasRule) out.push(bridgeRule(bridge));
  } else if (hasRule) {
    out.push(bridgeRule(bridge).replace('-A ', '-D '));
    // The last rule out takes the hook and the chain along: no guests, no trace in the rule set.
    const ours = [...lines].filter((l) => l.startsWith(`-A ${FORWARD_CHAIN} `));
    if (ours.length === 1) out.push(`-D FORWARD -j ${FORWARD_CHAIN}`, `-X ${FORWARD_CHAIN}`);
  }
  return out.length ? ['*filter', ...out, 'COMMIT', ''].join('\n') : null;
}

async function setBridgeForwarding(bridge: string, wanted: boolean, log?: StepLog): Promise<void> {
  for (const f of FAMILIES) {
    const saved = (await run(f.save, ['-t', 'filter'], { log })).stdout;
    const delta = forwardDelta(saved, bridge, wanted);
    if (delta) await run(f.restore, ['-w', XTABLES_WAIT_SECONDS, '--noflush'], { input: delta, log });
  }
}

export function acceptBridgeForwarding(bridge: string, log?: StepLog): Promise<void> {
  return setBridgeForwarding(bridge, true, log);
}

export function removeBridgeForwarding(bridge: string, log?: StepLog): Promise<void> {
  return setBridgeForwarding(bridge, false, log);
}
