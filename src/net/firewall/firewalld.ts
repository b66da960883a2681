/**
 * firewalld 2.3's `StrictForwardPorts=yes`: its forward chain sends every DNATed connection to a
 * chain of its own forward-ports, which rejects the rest, before any zone is looked at. No
 * published port of another program answers there, whatever zone its bridge is in, and an accept
 * in pipewright's table cannot override it: `-p` is refused instead. Looked for in firewalld's
 * configuration (a file read, nothing on hosts without it), then in what its loaded table does.
 */
import { readFileSync } from 'node:fs';
import { run } from '../../util/exec.js';
import { PipewrightError } from '../../util/errors.js';
import { toolInstalled } from '../../util/paths.js';

export const FIREWALLD_CONF = '/etc/firewalld/firewalld.conf';
const CHAIN = ['inet', 'firewalld', 'filter_FORWARD'];

/** Whether firewalld's configuration text turns StrictForwardPorts on. */
export function strictInConf(text: string): boolean {
  return /^[ \t]*StrictForwardPorts[ \t]*=[ \t]*(yes|true)[ \t]*$/im.test(text);
}

function confText(): string {
  try {
    return readFileSync(FIREWALLD_CONF, 'utf8');
  } catch {
    return ''; // no firewalld here
  }
}

/** Refuses (one line, nothing changed) to publish ports where firewalld rejects all but its own. */
export async function checkStrictForwardPorts(): Promise<void> {
  if (!strictInConf(confText()) || !toolInstalled('nft')) return;
  const chain = await run('nft', ['list', 'chain', ...CHAIN], { allowFailure: true });
  // Configured but not loaded (firewalld stopped, or not reloaded since): not in force.
  if (chain.exitCode !== 0 || !/ct status dnat jump/.test(chain.stdout)) return;
  throw new PipewrightError(
    `firewalld rejects every published port but its own forward-ports (StrictForwardPorts=yes in ${FIREWALLD_CONF}, nftables chain ${CHAIN.join(' ')}): set it to no and run firewall-cmd --reload, or publish with firewall-cmd --add-forward-port`,
  );
}
