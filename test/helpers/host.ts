/**
 * Test fixtures on the real host. Every fixture registers its own removal with t.teardown, so a
 * failing test still leaves no netns, interface, rule or container behind. Names carry a prefix
 * unique to this run ("pt" + 4 hex digits), short enough for 15-byte interface names.
 */
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { firewallNames, type FirewallNames } from '../../src/net/firewall/names.js';

type T = { teardown(fn: () => unknown): void; skip?: unknown };

export const RUN = `pt${randomBytes(2).toString('hex')}`;
// The CLI runs in its own process in the tests (whatever daemon runs on this host): tests stop it
// at a step, kill it, trace it. test/integration/warm-cli.test.ts sets its own daemon's socket.
process.env.PIPEWRIGHT_CLI_SOCKET = '';
export const isRoot = process.getuid?.() === 0;
export const ROOT_REASON = 'needs root (real kernel namespaces)';
/**
 * The `pipewright` executable as installed (native/pipewright.c: a daemon's warm worker, else Node
 * from the snapshot).
 */
export const CLI = fileURLToPath(new URL('../../dist/bin/pipewright', import.meta.url));
/** The CNI plugin as installed (native/pipewright-cni.c): hands calls to a daemon, else runs the CLI. */
export const CNI_PLUGIN = fileURLToPath(new URL('../../dist/cni-plugin/pipewright', import.meta.url));
export const PIPEWORK_BIN = fileURLToPath(new URL('../../dist/bundle/pipework.mjs', import.meta.url));
export const TEST_IMAGE = 'pipewright-test/busybox:latest';

let counter = 0;
/** A fresh name with this run's prefix: `${RUN}${tag}${n}` (<= 15 bytes for short tags). */
export function uniq(tag: string): string {
  return `${RUN}${tag}${counter++}`;
}

export async function sh(file: string, args: string[], input?: string) {
  return execa(file, args, { input, reject: false });
}

export async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await execa(file, args, { input, reject: false });
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return String(r.stdout);
}

/**
 * A private state dir for one test. Its teardown runs last (tap runs teardowns newest first): if
 * the test left attachments or networks behind (it failed midway), their firewall rules are
 * cleared by syncing an empty store, so no rule outlives the test.
 */
/** The firewall objects of the store in `dir` (tables and chains named after it: src/net/firewall/names.ts). */
export function firewallNamesOf(dir: string): FirewallNames {
  return firewallNames(realpathSync(dir));
}

export function stateDir(t: T): string {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-test-'));
  t.teardown(async () => {
    const count = async (args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout || '[]').length;
    const leftovers = (await count(['ls'])) + (await count(['network', 'ls']));
    rmSync(dir, { recursive: true, force: true });
    if (leftovers) {
      // An empty store at the same path owns the same firewall objects (names.ts): its sync removes
      // them, iptables' chains and (an iptables sync clears the other backend) nftables' tables.
      mkdirSync(dir, { mode: 0o700 });
      await cli(dir, ['--firewall', 'iptables', 'firewall', 'sync']);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return dir;
}

export async function netns(t: T, tag = 'n'): Promise<string> {
  const name = uniq(tag);
  await must('ip', ['netns', 'add', name]);
  t.teardown(async () => {
    await killNetnsProcesses(name);
    await sh('ip', ['netns', 'del', name]);
  });
  return name;
}

/** Processes a test started inside a netns (servers, DHCP clients) go with it. */
async function killNetnsProcesses(name: string): Promise<void> {
  const pids = (await sh('ip', ['netns', 'pids', name])).stdout.split('\n').filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Removes host links by exact name at teardown (bridges the code under test may have left). */
export function removeLinkAtEnd(t: T, name: string): void {
  t.teardown(() => sh('ip', ['link', 'del', name]));
}

/**
 * Stand-in NICs: a host veth pair `<name>` / `<name>x`, both up, removed at teardown. Each end is
 * an Ethernet device, wired to the other.
 */
export async function nicPair(t: T, tag: string): Promise<string> {
  const name = uniq(tag);
  await must('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}x`]);
  removeLinkAtEnd(t, name);
  await must('ip', ['link', 'set', name, 'up']);
  await must('ip', ['link', 'set', `${name}x`, 'up']);
  return name;
}

/** The pipewright CLI as a user runs it, against a private state dir. */
export async function cli(dir: string, args: string[], env: Record<string, string> = {}) {
  return execa(CLI, args, { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir, ...env } });
}

export async function inNs(ns: string, args: string[]) {
  return execa('ip', ['netns', 'exec', ns, ...args], { reject: false });
}

export async function ping(ns: string, addr: string): Promise<boolean> {
  return (await inNs(ns, ['ping', '-c', '1', '-W', '2', addr])).exitCode === 0;
}

/** A command in a named netns (`ip netns exec`), or on the host (ns undefined). */
const within = (ns: string | undefined, file: string, args: string[]): [string, string[]] =>
  ns ? ['ip', ['netns', 'exec', ns, file, ...args]] : [file, args];

/**
 * The whole firewall (iptables, ip6tables, nftables) as text without comments and counters, for
 * before/after comparisons: the host's, or a stand-in host's (`ns`, see testHost).
 */
export async function firewallSnapshot(ns?: string): Promise<string> {
  const save = (file: string, args: string[] = []) => must(...within(ns, file, args));
  const text =
    (await save('iptables-save')) + (await save('ip6tables-save')) + (await save('nft', ['list', 'ruleset']));
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '').replace(/counter packets \d+ bytes \d+/g, 'counter'))
    .join('\n');
}

export const PEER = fileURLToPath(new URL('./peer.mjs', import.meta.url));

/**
 * Starts a peer server in a named netns, or in a process's (`pid:<n>`, a container's); it answers
 * with the client's address, and dies with the test. `bind` :: serves IPv6 (and IPv4).
 */
export async function peerServer(
  t: T,
  ns: string,
  proto: 'tcp' | 'udp',
  port: number,
  bind = '0.0.0.0',
): Promise<void> {
  const server = [process.execPath, PEER, 'server', proto, String(port), bind];
  const child = ns.startsWith('pid:')
    ? execa('nsenter', ['-t', ns.slice(4), '-n', ...server], { reject: false })
    : execa('ip', ['netns', 'exec', ns, ...server], { reject: false });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
}

/** What a peer server answered (the address it saw), from a netns or from the host (ns null). */
export async function askPeer(ns: string | null, proto: 'tcp' | 'udp', host: string, port: number): Promise<string> {
  const argv = ['node', PEER, 'client', proto, host, String(port)];
  const r = ns
    ? await execa('ip', ['netns', 'exec', ns, ...argv], { reject: false })
    : await execa(argv[0], argv.slice(1), { reject: false });
  return String(r.stdout).trim();
}

/** The host's links by name, or a stand-in host's (`ns`). */
export async function hostLinks(ns?: string): Promise<string[]> {
  return JSON.parse(await must('ip', [...(ns ? ['-n', ns] : []), '-j', 'link', 'show'])).map(
    (l: { ifname: string }) => l.ifname,
  );
}

/** The conditions a stand-in host starts in. */
export interface HostConditions {
  /**
   * Docker's: the FORWARD policy DROP and forwarding on (what dockerd sets when it finds
   * forwarding off), with br_netfilter handing bridged frames to iptables.
   */
  dockerForwardDrop?: boolean;
}

/**
 * A stand-in host: a network namespace of the test's own, where pipewright runs as it runs on a
 * host (its bridges, firewall tables and sysctls are this namespace's), in the conditions the test
 * sets. Guests are other namespaces, wired to it. Nothing of the real host's firewall, policies
 * or sysctls is read or changed, so a test in it does not depend on what ran on the host before.
 */
export async function testHost(t: T, conditions: HostConditions = {}) {
  const ns = await netns(t, 'h');
  const run = (file: string, args: string[]) => must(...within(ns, file, args));
  await run('ip', ['link', 'set', 'lo', 'up']);
  if (conditions.dockerForwardDrop) {
    await run('iptables', ['-P', 'FORWARD', 'DROP']);
    // Where br_netfilter is a module not loaded yet, load it as dockerd does.
    if ((await sh(...within(ns, 'test', ['-e', '/proc/sys/net/bridge']))).exitCode !== 0)
      await must('modprobe', ['br_netfilter']);
    await run('sysctl', [
      '-qw',
      'net.ipv4.ip_forward=1',
      'net.bridge.bridge-nf-call-iptables=1',
      'net.bridge.bridge-nf-call-ip6tables=1',
    ]);
  }
  return {
    ns,
    run,
    /** The pipewright CLI run on this host, against a private state dir. */
    cli: (dir: string, args: string[], env: Record<string, string> = {}) =>
      execa('ip', ['netns', 'exec', ns, CLI, ...args], { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir, ...env } }),
    firewall: () => firewallSnapshot(ns),
    links: () => hostLinks(ns),
  };
}

/** The addresses of routedClient's link: the stand-in host's end and the client's, both families. */
export const UPLINK = { host4: '10.248.9.1', host6: 'fd00:249::1', client4: '10.248.9.2', client6: 'fd00:249::2' };

/**
 * Another host for a stand-in host: a netns wired to it by a veth ("up0" on the stand-in host),
 * UPLINK's addresses, its default routes via the stand-in host.
 */
export async function routedClient(t: T, hostNs: string): Promise<string> {
  const client = await netns(t, 'c');
  const inHost = (...args: string[]) => must('ip', ['-n', hostNs, ...args]);
  const inClient = (...args: string[]) => must('ip', ['-n', client, ...args]);
  await inHost('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1', 'netns', client);
  await inHost('address', 'add', `${UPLINK.host4}/24`, 'dev', 'up0');
  await inHost('address', 'add', `${UPLINK.host6}/64`, 'dev', 'up0', 'nodad');
  await inHost('link', 'set', 'up0', 'up');
  await inClient('address', 'add', `${UPLINK.client4}/24`, 'dev', 'up1');
  await inClient('address', 'add', `${UPLINK.client6}/64`, 'dev', 'up1', 'nodad');
  for (const dev of ['lo', 'up1']) await inClient('link', 'set', dev, 'up');
  await inClient('route', 'add', 'default', 'via', UPLINK.host4);
  await inClient('-6', 'route', 'add', 'default', 'via', UPLINK.host6);
  return client;
}

/**
 * `pipewright daemon` for a test (JSON log), on the host or a stand-in host (`ns`), stopped
 * (SIGTERM) at teardown; resolves once it listens. Its log lines so far, and the process, wrapped
 * (a returned process is a thenable that would be awaited to its end). Without self-healing: it
 * would check the host's whole rule set at every firewall change of the other tests running
 * beside it (self-heal.test.ts runs its daemon in a stand-in host).
 */
export async function startDaemon(t: T, dir: string, args: string[], env: Record<string, string> = {}, ns?: string) {
  const cliSocket = args.includes('--cli-socket') ? [] : ['--cli-socket', ''];
  const proc = execa(...within(ns, CLI, ['daemon', '--log-format', 'json', '--no-heal', ...cliSocket, ...args]), {
    reject: false,
    env: { PIPEWRIGHT_STATE_DIR: dir, ...env },
  });
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await proc;
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()).includes('"listening"') && resolve());
    void proc.then((r) => reject(new Error(`the daemon ended: ${r.stderr}`)));
  });
  return { proc, lines: () => out.split('\n').filter(Boolean) };
}

/** Polls `what` until it holds; the milliseconds it took, or -1 after `ms`. */
export async function until(what: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await what()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
  }
  return -1;
}

/** `docker network create <net>` of a driver and an IPAM driver (Docker's own where not given), its result. */
export async function dockerNetworkCreate(
  net: string,
  { driver, ipam, subnet, opts = [] }: { driver?: string; ipam?: string; subnet?: string; opts?: string[] },
) {
  const flag = (name: string, value?: string) => (value ? [name, value] : []);
  return sh('docker', [
    'network',
    'create',
    ...flag('-d', driver),
    ...flag('--ipam-driver', ipam),
    ...flag('--subnet', subnet),
    ...opts,
    net,
  ]);
}

export async function dockerUp(): Promise<boolean> {
  return (await sh('docker', ['info', '--format', '{{.ServerVersion}}'])).exitCode === 0;
}

/**
 * Gone, or a zombie (this sandbox's PID 1 does not reap orphans; a real init does). Read once: the
 * process may go at any time.
 */
export function processEnded(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * Waits until every thread of a process is stopped (state T or t in /proc/<pid>/task/<tid>/stat):
 * kill(SIGSTOP) returns before a thread running on another CPU has stopped, and such a thread was
 * seen to answer one more request.
 */
export async function waitStopped(pid: number): Promise<void> {
  const state = (tid: string) => readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  for (let i = 0; i < 400; i++) {
    if (readdirSync(`/proc/${pid}/task`).every((tid) => ['T', 't'].includes(state(tid)))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`process ${pid} never stopped`);
}
