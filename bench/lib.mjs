// Shared pieces of the benchmark: timing and statistics, the CNI plugins, pipewright's CLI, and
// the test host's guests (network namespaces) with their clean-up.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const PREFIX = 'pwb';
// The executable as installed: the launcher, which starts Node from the CLI's startup snapshot.
export const CLI = new URL('../dist/bin/pipewright', import.meta.url).pathname;
// A user's host rarely sets NODE_EXTRA_CA_CERTS; here it makes every Node start parse a CA bundle (~90 ms).
export const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
// A command runs in its own Node process unless a scenario starts warm workers (withWarmWorkers below).
env.PIPEWRIGHT_CLI_SOCKET = '';

export function timed(fn) {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

export async function timedAsync(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { n: s.length, median: at(0.5), p95: at(0.95) };
}

export function sh(file, args, input, extraEnv = {}) {
  const r = spawnSync(file, args, { input, env: { ...env, ...extraEnv } });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return String(r.stdout);
}

export function pipewright(stateDir, ...args) {
  return sh(CLI, ['--state-dir', stateDir, ...args]);
}

/**
 * Runs `body(run)` beside a daemon with warm CLI workers on the store of `stateDir` (the commands'
 * own, as on a host where the daemon runs), no Docker, no CNI socket: `run(...args)` hands a
 * command to its workers. The daemon is stopped afterwards, whatever happened.
 */
export async function withWarmWorkers(stateDir, dir, body) {
  const socket = join(dir, `${PREFIX}-cli.sock`);
  const daemon = await startDaemon(
    stateDir,
    ['--socket', join(dir, `${PREFIX}-plugin.sock`), '--cni-socket', '', '--cli-socket', socket],
    {
      DOCKER_HOST: `unix:///run/${PREFIX}-no-docker.sock`,
    },
  );
  try {
    spawnSync('sleep', ['0.5']); // the workers' start
    return body((...args) => sh(CLI, ['--state-dir', stateDir, ...args], undefined, { PIPEWRIGHT_CLI_SOCKET: socket }));
  } finally {
    await daemon.stop();
  }
}

/** One CNI plugin call (CNI_COMMAND ADD or DEL), its config on stdin, as a runtime makes it. */
export function cni(plugin, command, conf, containerId, netns) {
  const r = spawnSync(`/usr/lib/cni/${plugin}`, [], {
    input: JSON.stringify(conf),
    env: {
      ...env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
    },
  });
  if (r.status !== 0) throw new Error(`CNI ${plugin} ${command}: ${r.stdout}${r.stderr}`);
  return String(r.stdout);
}

/** Guests are network namespaces named <PREFIX>-<set>-<i>. */
export const guestName = (set, i) => `${PREFIX}-${set}-${i}`;

export function makeGuests(set, n) {
  sh('ip', ['-batch', '-'], Array.from({ length: n }, (_, i) => `netns add ${guestName(set, i)}`).join('\n') + '\n');
}

/** Refuses to run where a previous run (or anything else) uses the prefix. */
export function checkPrefixFree() {
  const ns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${PREFIX}-`)) : [];
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith(PREFIX));
  if (ns.length || links.length) {
    throw new Error(
      `the prefix ${PREFIX} is in use (${[...ns, ...links].slice(0, 3).join(', ')}...); remove those first`,
    );
  }
}

/** Everything named with the prefix: namespaces (their veths go along), then host links. */
export function cleanupHost() {
  const ns = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${PREFIX}-`)) : [];
  if (ns.length)
    spawnSync('ip', ['-force', '-batch', '-'], { input: ns.map((n) => `netns del ${n}`).join('\n') + '\n' });
  for (const l of readdirSync('/sys/class/net').filter((n) => n.startsWith(PREFIX)))
    spawnSync('ip', ['link', 'del', l]);
}

/** A progress line on stderr when it is a terminal. */
export function progress(label, i, n) {
  if (!process.stderr.isTTY) return;
  process.stderr.write(`\r${label} ${i}/${n}   `);
  if (i === n) process.stderr.write('\r' + ' '.repeat(label.length + 20) + '\r');
}

/** What of the CNI portmap plugin's base state (its chains, an ip6 nat table) existed before a run. */
export function portmapBaseState() {
  return {
    chains: spawnSync('iptables', ['-t', 'nat', '-S', 'CNI-HOSTPORT-DNAT']).status === 0,
    ip6nat: spawnSync('nft', ['list', 'table', 'ip6', 'nat']).status === 0,
  };
}

/** portmap leaves its base chains (and an ip6 nat table) behind: remove what the run created. */
export function removePortmapBase(before) {
  if (!before.chains) {
    const save = spawnSync('iptables-save', ['-t', 'nat']).stdout.toString().split('\n');
    const hooks = save
      .filter((l) => /^-A (PREROUTING|OUTPUT|POSTROUTING) .*-j CNI-HOSTPORT-/.test(l))
      .map((l) => l.replace(/^-A/, '-D'));
    const chains = save.filter((l) => l.startsWith(':CNI-HOSTPORT-')).map((l) => l.slice(1).split(' ')[0]);
    const text = [
      '*nat',
      ...hooks,
      ...chains.map((c) => `-F ${c}`),
      ...chains.map((c) => `-X ${c}`),
      'COMMIT',
      '',
    ].join('\n');
    spawnSync('iptables-restore', ['--noflush'], { input: text });
  }
  if (!before.ip6nat) spawnSync('nft', ['delete', 'table', 'ip6', 'nat']);
}

/**
 * `pipewright daemon` for a scenario (JSON log), its log lines collected as they come (the pipe
 * always drained); resolves once it listens. `stop` ends it.
 */
export async function startDaemon(stateDir, args, extraEnv = {}) {
  const proc = spawn(CLI, ['--state-dir', stateDir, 'daemon', '--log-format', 'json', ...args], {
    env: { ...env, ...extraEnv },
  });
  const lines = [];
  let buf = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop();
    for (const l of parts) lines.push(JSON.parse(l));
  });
  while (!lines.some((l) => l.listening)) await once(proc.stdout, 'data');
  const stop = async () => {
    proc.kill('SIGTERM');
    await once(proc, 'exit');
  };
  return { lines, stop, pid: proc.pid };
}

/** Milliseconds of driver requests logged, per container run (each run: one endpoint made and removed), by method. */
export function perEndpoint(lines, runs) {
  const by = {};
  for (const l of lines) {
    if (!/^(NetworkDriver|IpamDriver)\.(?!(Create|Delete)Network|RequestPool|ReleasePool)/.test(l.method ?? ''))
      continue;
    by[l.method] = (by[l.method] ?? 0) + l.ms / runs;
  }
  return { total: Object.values(by).reduce((a, b) => a + b, 0), by };
}

/**
 * Two Docker networks side by side: `pw` on pipewright's drivers (its daemon serving `driver`), a
 * bridge named `pw` too, and `docker` of Docker's own bridge driver, its bridge named `docker`.
 */
export function dockerNetworks(driver, { pw, docker }) {
  const [pwSubnet, dockerSubnet] = [pw.subnet, docker.subnet];
  sh('docker', [
    'network',
    'create',
    '-d',
    driver,
    '--ipam-driver',
    driver,
    '--subnet',
    pwSubnet,
    '-o',
    `bridge=${pw.name}`,
    pw.name,
  ]);
  const bridgeName = `com.docker.network.bridge.name=${docker.name}`;
  sh('docker', ['network', 'create', '--subnet', dockerSubnet, '-o', bridgeName, docker.name]);
  return [pw.name, docker.name];
}
