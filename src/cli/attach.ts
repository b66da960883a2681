/** attach / detach: the CLI face of src/ops/attach.ts and detach.ts (what each does: attach-run.ts). */
import type { Command } from 'commander';
import type { AttachmentRecord } from '../db/attachments.js';
import { collect, optionsOf } from './context.js';

/** Each command's one lazy load: what it does, with all it needs (attach-run.ts). */
const run = () => import('./attach-run.js');

export function attachmentJson<E extends object>(a: AttachmentRecord, extra: E = {} as E) {
  return {
    guest: { kind: a.guestKind, id: a.guestId, name: a.guestName },
    ifname: a.ifname,
    kind: a.kind,
    hostInterface: a.hostIf,
    hostLink: a.hostLink,
    mac: a.mac,
    mtu: a.mtu,
    addresses: a.spec.addresses,
    dhcp: a.spec.dhcp,
    publish: a.spec.publish ?? [],
    routes: a.spec.routes,
    metric: a.spec.metric ?? null,
    sbr: Boolean(a.spec.sbr),
    rate: a.spec.rate ?? null,
    state: a.state,
    createdAt: a.createdAt,
    ...extra,
  };
}

export interface AttachOpts {
  ifname?: string;
  hostLink?: string;
  mac?: string;
  mtu?: string;
  macvlanMode?: string;
  ipvlan?: string | true;
  vlan?: string;
  route: string[];
  hostShim?: string;
  directPhys?: boolean;
  publish: string[];
  metric?: string;
  rate?: string;
  sbr?: boolean;
}

export function register(program: Command): void {
  program
    .command('attach')
    .description(
      'put an interface into a guest: a veth on a bridge, a macvlan, ipvlan or 802.1q VLAN of a NIC, or a dummy, with addresses',
    )
    .argument(
      '<host-if>',
      'a bridge (created if missing), an Ethernet interface (the parent of a macvlan, ipvlan or VLAN), or none (a dummy: no host side)',
    )
    .argument('<guest>', 'docker:<name|id> | pid:<n> | <n> | netns:<name> | /path/to/netns | <name>')
    .argument('<address...>', '<ip>/<prefix>[@<gateway>] (repeatable, IPv4 or IPv6) or dhcp')
    .option('-i, --ifname <name>', 'interface name in the guest (default: eth0)')
    .option('-l, --host-link <name>', 'name of the host end of the veth (default: derived, unique)')
    .option('--mac <mac>', 'MAC of the guest interface (U:<text> derives a stable one from text)')
    .option('--mtu <n>', "MTU (default: the bridge's or parent's)")
    .option('--macvlan-mode <mode>', 'bridge | private | vepa | passthru (macvlan only)')
    .option('--ipvlan [mode]', "an ipvlan of the NIC instead of a macvlan, with the NIC's MAC: l2 (default) | l3 | l3s")
    .option(
      '--vlan <id>',
      "the NIC's 802.1q VLAN <id> (1-4094) itself as the guest interface (one guest per id and NIC)",
    )
    .option('--route <cidr[@gw]>', 'extra route in the guest (repeatable)', collect, [])
    .option(
      '--host-shim <ip/prefix>',
      "macvlan only: the host's own macvlan on the parent with this address, so the host reaches the guests",
    )
    .option(
      '-p, --publish <[ip:]host-port[-end]:ctr-port[-end][/proto]>',
      'publish a port, as docker run -p (repeatable), on each family the guest has; IPv6 host address in brackets',
      collect,
      [],
    )
    .option('--direct-phys', 'move <host-if> itself into the guest (back to the host at detach)')
    .option('--metric <n>', "metric of this interface's routes in the guest, its default route's too (lowest wins)")
    .option('--sbr', "source-based routing: traffic from this interface's addresses leaves by its own routes")
    .option(
      '--rate <ingress[/egress]>',
      "bandwidth limits, tc's units: into the guest [/ out of it], each <rate>[:<burst>] or - (bridge only)",
    )
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  pipewright attach br0 web 10.10.0.5/24@10.10.0.1          veth on bridge br0 into container "web"
  pipewright attach br0 netns:blue 10.10.0.6/24 fd00::6/64   a named netns, IPv4 and IPv6
  pipewright attach br-dual web pool:lan pool:lan6 -p 8080:80 -p [2001:db8::1]:8443:443   -p on both families, one on an IPv6 address
  pipewright attach eth1 docker:db 192.168.1.20/24 --mac 02:42:c0:a8:01:14   macvlan of eth1
  pipewright attach eth1 db 192.168.1.20/24 --host-shim 192.168.1.250/24   and the host can reach it
  pipewright attach eth1 web 192.168.1.21/24 --ipvlan l3             ipvlan of eth1 (one MAC on the wire)
  pipewright attach eth1 db 10.20.0.5/24 --vlan 20                   VLAN 20 of eth1, tagged on the wire
  pipewright attach none web 10.99.0.7/32 -i svc0            a dummy holding a service address the guest answers on
  pipewright attach br0 pid:4242 dhcp                        lease from a DHCP server on br0
  pipewright attach br-lan web pool:lan -p 8080:80 -p 5353:53/udp   next free address, two published ports
  pipewright attach br0 web 10.10.0.5/24@10.10.0.1 --metric 100     two networks: the lowest metric is the default route
  pipewright attach br1 web 10.20.0.5/24@10.20.0.1 -i eth1 --metric 200
  pipewright attach br1 web 10.20.0.5/24@10.20.0.1 -i eth1 --sbr  replies from 10.20.0.5 leave by eth1
  pipewright attach br0 web 10.10.0.5/24@10.10.0.1 --rate 10mbit/2mbit   10 Mbit/s into web, 2 Mbit/s out
  pipewright attach br0 web 10.10.0.5/24@10.10.0.1 --rate -/512kbit:16kb  only out of web, a 16 KiB burst
  (attach again with another --metric or --rate, or none, changes a live attachment in place)`,
    )
    .action(async (hostIf: string, guestSpec: string, addresses: string[], _o, cmd: Command) =>
      (await run()).runAttach(hostIf, guestSpec, addresses, optionsOf<AttachOpts>(cmd)),
    );

  program
    .command('detach')
    .description("remove a guest's pipewright interfaces (all, or one with -i) and what they held")
    .argument('<guest>', 'as for attach; a guest that no longer exists is found by its recorded name')
    .option('-i, --ifname <name>', 'only this interface')
    .option('--json', 'print what was removed as JSON')
    .addHelpText(
      'after',
      `
Examples:
  pipewright detach web            every interface pipewright gave container "web"
  pipewright detach netns:blue -i eth1`,
    )
    .action(async (guestSpec: string, _o, cmd: Command) =>
      (await run()).runDetach(guestSpec, optionsOf<{ ifname?: string }>(cmd)),
    );
}
