/**
 * pipework's command lines, parsed into what pipewright does with them. Pure: no host access, so
 * every accepted and refused form is unit-tested.
 *
 *   pipework [--direct-phys] <hostif|mac:<mac>> [-i cif] [-l lif] [-a 4|6] <guest> <ip/len[@gw]|dhcp> [<mac>|U:<text>][@<vlan>]
 *   pipework route|rule|tc <guest> <args...>
 */
import { UsageError } from '../util/errors.js';
import type { AttachInput } from '../model/attachment.js';
import { checkVlanId } from '../model/validate.js';

export type PipeworkCommand =
  /** vlan: pipework's @<vlan>, a macvlan of the host interface's VLAN interface <hostif>.<vlan>. */
  | { type: 'attach'; guest: string; text: AttachInput; hostMac?: string; family?: 4 | 6; vlan?: number }
  | { type: 'ns'; tool: 'route' | 'rule' | 'tc'; guest: string; args: string[] };

/** Forms of pipework that pipewright does not do, with the reason given to the user. */
const UNSUPPORTED: Record<string, string> = {
  '--wait':
    '--wait needs a tool inside the container; pipewright attaches synchronously, so the interface is up when attach returns',
  '--save': '--save/--restore are replaced by the store: pipewright records every attachment (see pipewright ls)',
  '--restore': '--save/--restore are replaced by the store: pipewright records every attachment (see pipewright ls)',
};

/** pipework's default name for the container interface (pipewright's own default is eth0). */
export const PIPEWORK_DEFAULT_IFNAME = 'eth1';

export function parsePipework(argv: string[]): PipeworkCommand {
  if (argv[0] === '--direct-phys') {
    const cmd = parsePipework(argv.slice(1));
    if (cmd.type !== 'attach')
      throw new UsageError('pipework: --direct-phys goes with <hostinterface> <guest> <address>');
    return { ...cmd, text: { ...cmd.text, directPhys: true } };
  }
  const [first, ...rest] = argv;
  if (!first)
    throw new UsageError(
      'usage: pipework <hostinterface> [-i containerinterface] [-l localinterfacename] <guest> <ipaddr>/<subnet>[@gateway] [macaddr]',
    );
  if (UNSUPPORTED[first]) throw new UsageError(`pipework ${first}: ${UNSUPPORTED[first]}`);
  if (first === 'route' || first === 'rule' || first === 'tc') {
    const [guest, ...args] = rest;
    if (!guest || args.length === 0) throw new UsageError(`usage: pipework ${first} <guest> <${first} arguments>`);
    return { type: 'ns', tool: first, guest, args };
  }
  const opts: { ifname?: string; hostLink?: string; family?: 4 | 6 } = {};
  let i = 0;
  for (; i + 1 < rest.length && /^-[ila]$/.test(rest[i]); i += 2) {
    const value = rest[i + 1];
    if (rest[i] === '-i') opts.ifname = value;
    else if (rest[i] === '-l') opts.hostLink = value;
    else opts.family = parseFamily(value);
  }
  const [guest, address, macArg, ...extra] = rest.slice(i);
  if (!guest || !address) throw new UsageError('pipework: give <guest> and <ipaddr>/<subnet>[@gateway] (or dhcp)');
  if (extra.length) throw new UsageError(`pipework: unexpected arguments: ${extra.join(' ')}`);
  const [mac, vlanText] = (macArg ?? '').split('@');
  const vlan = vlanText === undefined ? undefined : checkVlanId(vlanText);
  const dhcp = address === 'dhcp' || address.startsWith('dhcp:');
  if (address.startsWith('dhcp:'))
    throw new UsageError(
      'pipework: dhcp:<client options> is not supported; pipewright runs udhcpc itself (plain dhcp)',
    );
  if (!dhcp && opts.family && !matchesFamily(address, opts.family)) {
    throw new UsageError(`pipework: -a ${opts.family} was given but ${address} is not an IPv${opts.family} address`);
  }
  const hostMac = first.startsWith('mac:') ? first.slice(4) : undefined;
  return {
    type: 'attach',
    guest,
    hostMac,
    family: opts.family,
    vlan,
    text: {
      hostIf: hostMac ? '' : first,
      addresses: [address],
      ifname: opts.ifname ?? PIPEWORK_DEFAULT_IFNAME,
      hostLink: opts.hostLink,
      mac: mac || undefined,
    },
  };
}

function parseFamily(value: string): 4 | 6 {
  const v = value.replace(/^(ip|inet)/, '');
  if (v === '4' || v === '6') return Number(v) as 4 | 6;
  throw new UsageError(`pipework: -a takes 4 or 6 (address family), not "${value}"`);
}

function matchesFamily(address: string, family: 4 | 6): boolean {
  return address.includes(':') === (family === 6);
}
