/** What `pipewright pipework ...` and the `pipework` bin do: pipework's argv, carried out by pipewright's core. */
import { dockerSocket, withContext, type GlobalOptions } from '../frontend/context.js';
import { checkAttachSpec } from '../model/attachment.js';
import { vlanInterfaceName } from '../model/host-names.js';
import { checkMac } from '../model/validate.js';
import { readLinks } from '../net/link-state/link-state.js';
import { hostLinkInfo } from '../net/link-state/sysfs.js';
import { isNic } from '../net/links/child.js';
import { attach } from '../ops/attach.js';
import { resolveGuest } from '../runtime/guest.js';
import { PipewrightError, UsageError } from '../util/errors.js';
import { run } from '../util/exec.js';
import { silent, stderrLog } from '../util/log.js';
import { printJson } from './context.js';
import { runInGuest } from './passthrough-run.js';
import { parsePipework } from './pipework-argv.js';

export async function runPipework(argv: string[], opts: GlobalOptions): Promise<void> {
  const cmd = parsePipework(argv);
  if (cmd.type === 'ns') {
    if (cmd.tool === 'tc') return runTc(cmd.guest, cmd.args, opts);
    const out = await runInGuest(cmd.tool, cmd.guest, cmd.args, opts.verbose);
    if (out) process.stdout.write(out + '\n');
    return;
  }
  const hostIf = cmd.hostMac ? await interfaceByMac(cmd.hostMac) : cmd.text.hostIf;
  const spec = checkAttachSpec({
    ...cmd.text,
    hostIf: cmd.vlan ? vlanParent(hostIf, cmd.vlan, cmd.text.directPhys) : hostIf,
  });
  const guest = await resolveGuest(cmd.guest, dockerSocket());
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
  const wanted = checkMac(mac);
  const link = (await readLinks(undefined)).find((l) => l.mac === wanted);
  if (!link) throw new PipewrightError(`no host interface has MAC ${wanted} (see 'ip link')`);
  return link.ifname;
}

/**
 * pipework's @<vlan>: a macvlan of the NIC's VLAN interface <nic>.<vlan>, made if missing (and,
 * unlike pipework, removed with its last guest). A Linux bridge takes no VLAN, as in pipework.
 */
function vlanParent(nic: string, vlan: number, directPhys?: boolean): string {
  if (directPhys) throw new UsageError('pipework: --direct-phys moves the NIC itself; it takes no @vlan');
  if (!isNic(hostLinkInfo(nic)))
    throw new UsageError(
      `pipework: @${vlan} needs a physical interface; ${nic} is not one (VLANs on a Linux bridge are not supported, as in pipework)`,
    );
  return vlanInterfaceName(nic, vlan);
}

async function runTc(guestSpec: string, args: string[], opts: GlobalOptions): Promise<void> {
  const guest = await resolveGuest(guestSpec, dockerSocket());
  const res = await run('nsenter', [`--net=${guest.netnsPath}`, '--', 'tc', ...args], {
    log: opts.verbose ? stderrLog() : silent,
  });
  if (res.stdout) process.stdout.write(res.stdout + '\n');
}
