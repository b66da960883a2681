/** `pipewright pipework ...` and the `pipework` bin: pipework's argv, carried out by pipewright's core. */
import type { Command } from 'commander';
import { PipewrightError, UsageError } from '../util/errors.js';
import { dockerSocket, withContext, type GlobalOptions } from '../frontend/context.js';
import { optionsOf, printJson } from './context.js';
import { runInGuest } from './ns.js';

export async function runPipework(argv: string[], opts: GlobalOptions): Promise<void> {
  const { parsePipework } = await import('./pipework-argv.js');
  const cmd = parsePipework(argv);
  if (cmd.type === 'ns') {
    if (cmd.tool === 'tc') return runTc(cmd.guest, cmd.args, opts);
    const out = await runInGuest(cmd.tool, cmd.guest, cmd.args, opts.verbose);
    if (out) process.stdout.write(out + '\n');
    return;
  }
  const { checkAttachSpec } = await import('../model/attachment.js');
  const hostIf = cmd.hostMac ? await interfaceByMac(cmd.hostMac) : cmd.text.hostIf;
  const spec = checkAttachSpec({
    ...cmd.text,
    hostIf: cmd.vlan ? await vlanParent(hostIf, cmd.vlan, cmd.text.directPhys) : hostIf,
  });
  const { resolveGuest } = await import('../runtime/guest.js');
  const guest = await resolveGuest(cmd.guest, dockerSocket());
  const { attach } = await import('../ops/attach.js');
  await withContext(opts, async (ctx) => {
    const res = await attach(ctx, guest, spec);
    if (ctx.json)
      printJson({
        changed: res.changed,
        ifname: res.attachment.ifname,
        hostLink: res.attachment.hostLink,
        mac: res.attachment.mac,
      });
  });
}

async function interfaceByMac(mac: string): Promise<string> {
  const { checkMac } = await import('../model/validate.js');
  const { readLinks } = await import('../net/link-state/link-state.js');
  const wanted = checkMac(mac);
  const link = (await readLinks(undefined)).find((l) => l.mac === wanted);
  if (!link) throw new PipewrightError(`no host interface has MAC ${wanted} (see 'ip link')`);
  return link.ifname;
}

/**
 * pipework's @<vlan>: a macvlan of the NIC's VLAN interface <nic>.<vlan>, made if missing (and,
 * unlike pipework, removed with its last guest). A Linux bridge takes no VLAN, as in pipework.
 */
async function vlanParent(nic: string, vlan: number, directPhys?: boolean): Promise<string> {
  const { hostLinkInfo } = await import('../net/link-state/sysfs.js');
  const { isNic } = await import('../net/links/child.js');
  const { vlanInterfaceName } = await import('../model/host-names.js');
  if (directPhys) throw new UsageError('pipework: --direct-phys moves the NIC itself; it takes no @vlan');
  if (!isNic(hostLinkInfo(nic)))
    throw new UsageError(
      `pipework: @${vlan} needs a physical interface; ${nic} is not one (VLANs on a Linux bridge are not supported, as in pipework)`,
    );
  return vlanInterfaceName(nic, vlan);
}

async function runTc(guestSpec: string, args: string[], opts: GlobalOptions): Promise<void> {
  const { resolveGuest } = await import('../runtime/guest.js');
  const { run } = await import('../util/exec.js');
  const { stderrLog, silent } = await import('../util/log.js');
  const guest = await resolveGuest(guestSpec, dockerSocket());
  const res = await run('nsenter', [`--net=${guest.netnsPath}`, '--', 'tc', ...args], {
    log: opts.verbose ? stderrLog() : silent,
  });
  if (res.stdout) process.stdout.write(res.stdout + '\n');
}

export function register(program: Command): void {
  program
    .command('pipework')
    .description("accept pipework's command lines unchanged (default container interface eth1, as pipework)")
    .argument('<args...>', 'pipework arguments')
    .allowUnknownOption()
    .addHelpText(
      'after',
      `
Examples:
  pipewright pipework br1 web 192.168.1.5/24@192.168.1.1
  pipewright pipework eth2 -i eth1 web 10.0.0.5/24 26:2e:71:98:60:8f
  pipewright pipework eth2 web 10.0.10.5/24 @10          a macvlan of eth2.10 (VLAN 10, made if missing)
  pipewright pipework br1 -l vethweb web dhcp
  pipewright pipework route web add 10.0.0.0/8 via 192.168.1.254`,
    )
    .action(async (args: string[], _o, cmd: Command) => runPipework(args, optionsOf(cmd)));
}
