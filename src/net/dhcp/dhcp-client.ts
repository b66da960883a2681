/**
 * `dhcp` addresses: busybox's udhcpc runs in the guest's network namespace for as long as the
 * attachment exists (it renews the lease itself) and is stopped, releasing the lease, at detach.
 * Its event script (scripts/udhcpc-hook.sh) writes the lease to a file that attach waits for.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { shipped, TOOL_PATH } from '../../util/paths.js';
import { processRef, sameProcess, type ProcessRef } from '../../util/process.js';
import { PipewrightError } from '../../util/errors.js';
import type { StepLog } from '../../util/log.js';
import { silent } from '../../util/log.js';
import ipaddr from 'ipaddr.js';
import { contains, parseCidr, parseIpConfig, type IpConfig } from '../../model/address.js';

function leaseDir(stateDir: string): string {
  const dir = join(stateDir, 'dhcp');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export interface DhcpClient extends ProcessRef {
  /** Resolves with the first lease; rejects (and stops the client) when none comes in time. */
  lease: Promise<IpConfig>;
}

/**
 * The guest's namespace as the client opens it: the fd the caller hands over, never a path a reused
 * pid could redirect.
 */
const CHILD_NETNS_FD = 3;
const CHILD_NETNS = `/proc/self/fd/${CHILD_NETNS_FD}`;

/**
 * Starts the client in the namespace the caller holds open as `netnsFd`; the caller records its
 * pid before waiting (a stock dnsmasq pings ~3 s before offering).
 */
export function startDhcpClient(
  stateDir: string,
  key: string,
  netnsFd: number,
  ifname: string,
  metric: number | null,
  log: StepLog = silent,
  timeoutMs = 30_000,
): DhcpClient {
  const base = join(leaseDir(stateDir), key);
  rmSync(`${base}.lease`, { force: true });
  const args = [
    `--net=${CHILD_NETNS}`,
    '--',
    'udhcpc',
    '-f',
    '-R',
    '-i',
    ifname,
    '-s',
    shipped('scripts/udhcpc-hook.sh'),
    '-t',
    '0',
    '-T',
    '2',
    '-A',
    '3',
  ];
  const routeMetric = metric === null ? {} : { PIPEWRIGHT_ROUTE_METRIC: String(metric) };
  log.step(
    `${metric === null ? '' : `PIPEWRIGHT_ROUTE_METRIC=${metric} `}nsenter ${args.join(' ')} (kept running for the attachment's lifetime)`,
  );
  const out = openSync(`${base}.log`, 'a');
  // A daemon for the attachment's lifetime, not a call to await: plain spawn (argv, no shell), detached.
  const child = spawn('nsenter', args, {
    detached: true,
    stdio: ['ignore', out, out, netnsFd],
    // The client and its hook script get a fixed PATH and the lease file, nothing of the caller's environment.
    env: { PATH: TOOL_PATH, PIPEWRIGHT_LEASE_FILE: `${base}.lease`, ...routeMetric },
  });
  child.on('error', () => {});
  child.unref();
  closeSync(out);
  const pid = child.pid;
  if (!pid) throw new PipewrightError('could not start udhcpc (is the udhcpc package installed?)');
  // nsenter execs udhcpc in the same process: this start time is the client's.
  const client = processRef(pid);
  const lease = (async () => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && child.exitCode === null) {
      if (existsSync(`${base}.lease`)) return parseLease(readFileSync(`${base}.lease`, 'utf8'));
      await new Promise((r) => setTimeout(r, 100));
    }
    stopDhcpClient(client);
    throw new PipewrightError(
      `no DHCP lease on ${ifname} within ${timeoutMs / 1000} s; is a DHCP server on that network? (log: ${base}.log)`,
    );
  })();
  return { ...client, lease };
}

/** The hook's line "<ip> <prefix> [<gateway>] <seconds>", checked as strictly as a user's address. */
function parseLease(text: string): IpConfig {
  const [address, prefix, gateway] = text.trim().split(' ');
  try {
    return parseIpConfig(`${address}/${prefix}${gateway ? `@${gateway}` : ''}`);
  } catch (err) {
    throw new PipewrightError(`the DHCP server offered a lease that is not valid (${(err as Error).message})`);
  }
}

/** Ranges a DHCP server may hand a guest: ordinary unicast, nothing the host treats specially. */
const LEASABLE = ['unicast', 'private', 'carrierGradeNat'];

/**
 * A lease says what a DHCP server on the guest's network offered, and that server may be anyone's
 * (another guest): its address must be ordinary unicast IPv4 and, when the host interface holds
 * addresses, lie in one of their subnets, so a rogue server cannot point pipewright's rules
 * (published ports) at the host's loopback or at another network.
 */
export function checkLease(lease: IpConfig, hostIf: string, hostCidrs: string[]): void {
  const range = ipaddr.parse(lease.address).range();
  const offered = `the DHCP server on ${hostIf} offered ${lease.address}/${lease.prefix}`;
  if (lease.family !== 4 || !LEASABLE.includes(range))
    throw new PipewrightError(`${offered}, a ${range} address; refusing it`);
  const v4 = hostCidrs.filter((c) => !c.includes(':'));
  const inside = v4.some((cidr) => {
    const net = parseCidr(cidr);
    return contains(net.address, net.prefix, lease.address);
  });
  if (v4.length && !inside)
    throw new PipewrightError(
      `${offered}, outside ${hostIf}'s subnets (${v4.join(', ')}); is a rogue DHCP server on that network?`,
    );
}

/**
 * Stops the client (udhcpc -R releases the lease on SIGTERM); a client already gone is fine. Only
 * the recorded process: after a reboot its pid may be the host's own udhcpc, or another guest's.
 */
export function stopDhcpClient(client: ProcessRef): void {
  try {
    if (!sameProcess(client)) return;
    // Right after spawn it may still be nsenter, about to exec udhcpc: both are ours.
    if (!['udhcpc', 'nsenter'].includes(readFileSync(`/proc/${client.pid}/comm`, 'utf8').trim())) return;
    process.kill(client.pid, 'SIGTERM');
  } catch {
    // already exited
  }
}
