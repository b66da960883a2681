/**
 * The startup snapshot's warm-up. V8 keeps in a snapshot the compiled code of the functions that
 * ran while it was built; any other function is compiled at its first call, in every process that
 * starts from the snapshot (most of a command's time above `node -e 0`). So the build runs, on
 * throwaway data, the pure code every command takes: commander's parsing of typical command lines
 * (on a twin of the command tree whose actions only read their options), the powers check, a
 * link made and read back over rtnetlink's encoding and parsing (against a stand-in kernel), and
 * an attach's spec with published ports turned into firewall rules and an nftables script.
 * It changes nothing on the host, keeps nothing, and caches no path (the package may be
 * installed elsewhere than it was built).
 */
import type { Command } from 'commander';
import { parseCidr } from '../model/address.js';
import { checkAttachSpec, publishOf, staticAddresses } from '../model/attachment.js';
import type { FirewallState } from '../model/firewall-state.js';
import { deltaScript } from '../net/firewall/nftables.js';
import { desiredRules, portsTouched } from '../net/firewall/rules.js';
import { linkOn } from '../net/link-state/link-state.js';
import { lackOfPowers } from '../net/netns/powers.js';
import { ifla, kindLinkInfo } from '../net/rtnetlink/attrs.js';
import { EchoKernel } from '../net/rtnetlink/echo.js';
import { addAddress, newLink } from '../net/rtnetlink/rtnl.js';
import { portRows } from '../ops/ports.js';
import { optionsOf } from './context.js';
import { buildProgram, commandsOf } from './main.js';

/** Command lines as operators and hooks write them (their values are never used). */
const TYPICAL: readonly string[][] = [
  ['ls'],
  ['ls', '--json'],
  ['inspect', 'netns:blue'],
  ['attach', 'br0', 'netns:blue', '10.10.0.5/24@10.10.0.1', '-p', '8080:80'],
  ['attach', '--state-dir', '/var/lib/pipewright', 'br0', 'docker:web', 'pool:lan', '-i', 'eth1', '--json'],
  ['detach', 'netns:blue'],
  ['pool', 'ls'],
  ['volume', 'create', 'data'],
  ['mount', 'pid:1', 'data:/data'],
];

function parseTypical(): void {
  const twin = buildProgram();
  for (const cmd of commandsOf(twin)) cmd.action((...args: unknown[]) => void optionsOf(args.at(-1) as Command));
  for (const argv of TYPICAL) twin.parse(argv, { from: 'user' });
}

async function readBackLink() {
  const kernel = new EchoKernel();
  const attrs = [ifla.ifname('eth0'), ifla.mtu(1500), ifla.address('02:00:00:00:00:01'), kindLinkInfo('veth')];
  await newLink(kernel, 'eth0', attrs);
  await addAddress(kernel, 0, parseCidr('10.10.0.5/24'));
  return linkOn(kernel, 'eth0');
}

/** An attach's spec checked, its published ports' rows, and the nftables script that adds them beside another's. */
function publishBeside(): string[] {
  const spec = checkAttachSpec({
    hostIf: 'br0',
    addresses: ['10.10.0.5/24@10.10.0.1', 'fd00::5/64'],
    publish: ['8080:80', '[2001:db8::1]:5353:53/udp'],
    routes: ['10.20.0.0/16@10.10.0.1'],
  });
  const ports = portRows(staticAddresses(spec), publishOf(spec)).map((row) => ({ ...row, bridge: spec.hostIf }));
  const network = { subnet: '10.10.0.0/24', masquerade: true, isolated: false };
  const state = (n: number): FirewallState => ({
    bridges: [{ bridge: 'br0', network, hasGuests: true }],
    ports: ports.slice(0, n),
  });
  const scope = portsTouched(state(1).ports, state(ports.length).ports);
  return deltaScript(desiredRules(state(1), scope), desiredRules(state(ports.length), scope));
}

/** Resolves with what it made (the link read back, the script), by which a test sees it did its work. */
export async function warmUp() {
  parseTypical();
  lackOfPowers();
  return { link: await readBackLink(), script: publishBeside() };
}
