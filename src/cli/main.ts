/**
 * The pipewright command line. Each command group lives in its own module and loads the core
 * only when it runs, so start-up stays small.
 */
import { Command, CommanderError } from 'commander';
import { fail } from './context.js';
import * as attachCmds from './attach.js';
import * as daemonCmds from './daemon.js';
import * as ipamCmds from './ipam.js';
import * as lifecycleCmds from './lifecycle.js';
import * as networkCmds from './network.js';
import * as passthroughCmds from './passthrough.js';
import * as pipeworkCmds from './pipework.js';
import * as showCmds from './show.js';
import * as storageCmds from './storage.js';

export function buildProgram(): Command {
  const program = new Command('pipewright')
    .description('network and storage plumbing for Linux containers: veth, bridges, macvlan, managed addresses')
    .version('0.1.0')
    .option('--state-dir <dir>', 'where the store lives (env PIPEWRIGHT_STATE_DIR)', undefined)
    .option(
      '--store <sqlite|etcd://host:port,...>',
      'where pools and leases live (env PIPEWRIGHT_STORE; default: the SQLite store); etcd+https:// forces TLS, etcd+http:// accepts plain http to a non-loopback etcd',
    )
    .option('--etcd-ca <file>', 'etcd store: the CA that signed its certificate; turns TLS on (env PIPEWRIGHT_ETCD_CA)')
    .option('--etcd-cert <file>', 'etcd store: client certificate, with --etcd-key (env PIPEWRIGHT_ETCD_CERT)')
    .option('--etcd-key <file>', 'etcd store: client key (env PIPEWRIGHT_ETCD_KEY)')
    .option(
      '--etcd-user <name>',
      'etcd store: user; the password from PIPEWRIGHT_ETCD_PASSWORD or --etcd-password-file (env PIPEWRIGHT_ETCD_USER)',
    )
    .option(
      '--etcd-password-file <file>',
      'etcd store: a file holding the password (env PIPEWRIGHT_ETCD_PASSWORD_FILE)',
    )
    .option(
      '--firewall <iptables|nftables|auto>',
      'firewall backend (env PIPEWRIGHT_FIREWALL; auto: nftables when nft works)',
    )
    .option('--verbose', 'print each kernel and firewall step as it is taken')
    .exitOverride()
    // A usage error is one line, with the pointer to --help on it.
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`${s.trim().replace(/\s*\n\s*/g, ' ')} (run with --help for usage)\n`),
    });
  for (const group of [
    attachCmds,
    showCmds,
    ipamCmds,
    networkCmds,
    storageCmds,
    lifecycleCmds,
    daemonCmds,
    passthroughCmds,
    pipeworkCmds,
  ])
    group.register(program);
  for (const cmd of commandsOf(program)) cmd.exitOverride();
  return program;
}

/** A command and every command below it. */
export const commandsOf = (c: Command): Command[] => [c, ...c.commands.flatMap(commandsOf)];

/** The process's start: its command line, or (a daemon's warm worker) a caller's, once one comes. */
export async function enter(program: Command = buildProgram()): Promise<void> {
  if (process.env.PIPEWRIGHT_WARM_FD) (await import('./warm-worker.js')).becomeCaller(program);
  await main(process.argv, program);
}

/** Runs one command line; `program` may be built ahead (the startup snapshot builds it once). */
export async function main(argv: string[], program: Command = buildProgram()): Promise<void> {
  // A dependency's deprecation notice (gRPC's TLS server name for an IP address) is not the
  // user's business and would break "one line on stderr".
  process.noDeprecation = true;
  // Output piped into `head` that stops reading: done, as for any Unix tool (no stack trace).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  // Run by a CNI runtime (CNI_COMMAND set, no arguments): the CNI plugin, not the command line.
  if (process.env.CNI_COMMAND && argv.length <= 2) {
    const { runCni } = await import('../cni/plugin.js');
    process.exitCode = await runCni(process.env);
    return;
  }
  try {
    // The chaos suite's fault seam (src/util/faults.ts): inert unless these are set.
    if (process.env.PIPEWRIGHT_FAULT || process.env.PIPEWRIGHT_FAULT_TRACE) {
      (await import('../util/faults.js')).armFaults(process.env.PIPEWRIGHT_FAULT, process.env.PIPEWRIGHT_FAULT_TRACE);
    }
    // Run by netavark, through dist/netavark-plugin/pipewright: the netavark plugin.
    if (argv[2] === '--netavark-plugin') {
      const { runNetavark } = await import('../netavark/plugin.js');
      process.exit(await runNetavark(argv.slice(3), program.version() ?? ''));
    }
    await program.parseAsync(argv);
    // Done: exit now, before Node's teardown closes the store (see withContext in frontend/context.ts).
    // Output is written: stdout and stderr are synchronous for files, pipes and terminals on Linux.
    process.exit();
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander.
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    fail(err);
  }
}
