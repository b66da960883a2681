/**
 * The daemon puts back what other programs take away (src/daemon/heal.ts), measured. A stand-in
 * host (testHost, in Docker's conditions: FORWARD DROP, br_netfilter) runs `pipewright daemon`
 * with two networks: "a" holds a guest publishing a port, "b" (masquerade) a client guest. Each
 * disruption, HEAL_N times (default 10; the figures in docs/ports.md are of HEAL_N=30): the time from just before it until the published port
 * (client -> b's gateway -> DNAT -> guest) and the client's ping of the guest (forwarded between
 * the bridges) answer again, p50/p99/max per kind, printed as test comments. Every disruption is
 * made inside the stand-in host's namespace; the real host's rule set is never touched.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { firewallNamesOf, CLI, isRoot, netns, ROOT_REASON, stateDir, testHost, until } from '../helpers/host.js';

const N = Number(process.env.HEAL_N ?? 10);
const PROBE = fileURLToPath(new URL('../helpers/heal-probe.mjs', import.meta.url));
const [SRV_IP, HOST_B, PORT] = ['10.247.61.2', '10.247.62.1', 18561];

type Host = Awaited<ReturnType<typeof testHost>>;
type Tap = Test;

/** `pipewright daemon` inside the stand-in host (JSON log), stopped at teardown. */
async function daemonIn(t: Tap, host: Host, dir: string, firewall: string) {
  const args = ['--firewall', firewall, 'daemon', '--log-format', 'json', '--cni-socket', '', '--cli-socket', ''];
  const proc = execa('ip', ['netns', 'exec', host.ns, CLI, ...args, '--socket', join(dir, 'plugin.sock')], {
    reject: false,
    env: { PIPEWRIGHT_STATE_DIR: dir },
  });
  t.teardown(async () => {
    proc.kill('SIGTERM');
    await proc;
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.not(await until(() => out.includes('"listening"'), 15_000), -1, 'the daemon listens');
  return { proc, lines, healed: () => lines().filter((l) => l.healed).length };
}

/** The prober in the client's namespace: one line out per line in. */
function prober(t: Tap, ns: string) {
  const proc = execa('ip', ['netns', 'exec', ns, process.execPath, PROBE, 'probe'], { reject: false });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  const waiting: ((line: string) => void)[] = [];
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line !== 'ready') waiting.shift()?.(line);
    }
  });
  return (t0: number): Promise<{ port: number; ping: number }> =>
    new Promise((resolve) => {
      waiting.push((line) => resolve(JSON.parse(line)));
      proc.stdin!.write(`${t0} ${HOST_B} ${PORT} ${SRV_IP}\n`);
    });
}

/** Two networks, a server guest publishing PORT on "a", a client guest on "b"; the client's prober. */
async function setUp(t: Tap, host: Host, firewall: string) {
  const dir = stateDir(t);
  const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
  const [srv, client] = [await netns(t), await netns(t)];
  for (const args of [
    ['pool', 'create', 'ha', '10.247.61.0/24'],
    ['pool', 'create', 'hb', '10.247.62.0/24'],
    ['network', 'create', 'na', '--bridge', 'bra', '--pool', 'ha'],
    ['network', 'create', 'nb', '--bridge', 'brb', '--pool', 'hb', '--masquerade'],
    ['attach', 'bra', srv, 'pool:ha', '-p', `${PORT}:8080`],
    ['attach', 'brb', client, 'pool:hb'],
  ]) {
    const r = await pw(...args);
    t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
  }
  const server = execa('ip', ['netns', 'exec', srv, process.execPath, PROBE, 'serve', '8080'], { reject: false });
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
  t.teardown(() => pw('detach', srv).then(() => pw('detach', client)));
  return { dir, probe: prober(t, client) };
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

/**
 * `disrupt` N times: each time, the ms until port and ping answer again, and a repair in the
 * daemon's log. Prints p50/p99/max.
 */
async function measure(
  t: Tap,
  name: string,
  disrupt: () => Promise<unknown>,
  probe: (t0: number) => Promise<{ port: number; ping: number }>,
  daemon: Awaited<ReturnType<typeof daemonIn>>,
  host: Host,
) {
  const healed = daemon.healed;
  const logged = daemon.healed();
  const port: number[] = [];
  const ping: number[] = [];
  for (let i = 0; i < N; i++) {
    const before = healed();
    const t0 = Date.now();
    await disrupt();
    const r = await probe(t0);
    port.push(r.port);
    ping.push(r.ping);
    if (r.port < 0 || r.ping < 0 || (await until(() => healed() > before, 3000)) < 0) {
      t.fail(`${name} #${i}: port ${r.port} ms, ping ${r.ping} ms, repairs logged ${healed() - before}`, {
        daemon: daemon.lines().slice(-8),
        firewall: await host.firewall(),
      });
      return;
    }
    await new Promise((r) => setTimeout(r, 60)); // the daemon's own writes settle
  }
  const show = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return `p50 ${pct(s, 0.5)} ms, p99 ${pct(s, 0.99)} ms, max ${s[s.length - 1]} ms`;
  };
  const repairs = daemon
    .lines()
    .filter((l) => l.healed)
    .slice(logged)
    .map((l) => Number(l.ms));
  t.comment(
    `${name} (n=${N}): published port ${show(port)}; ping ${show(ping)}; the daemon's repairs ${show(repairs)}`,
  );
  // The 1 s goal is judged on the median: a loaded CI host stretches the tail (the figures above show it).
  const median = (xs: number[]) =>
    pct(
      [...xs].sort((a, b) => a - b),
      0.5,
    );
  t.ok(
    Math.max(median(port), median(ping)) < 1000,
    `${name}: port and ping answer again within 1 s (medians ${median(port)}, ${median(ping)} ms)`,
  );
}

t.test(
  'nftables backend: flushes, a deleted table, the bridge address and the bridge',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t, { dockerForwardDrop: true });
    const { dir, probe } = await setUp(t, host, 'nftables');
    // Another program's table: pipewright's repairs leave it as it is.
    for (const cmd of [
      'add table inet other',
      'add chain inet other c { type filter hook input priority 0; }',
      'add rule inet other c tcp dport 9 counter accept',
    ])
      await host.run('nft', [cmd]);
    const daemon = await daemonIn(t, host, dir, 'nftables');
    const first = await probe(Date.now());
    t.ok(first.port >= 0 && first.ping >= 0, 'port and ping answer before any disruption');
    // Its first pass and the probe's traffic: a check that found drift where there is none would
    // repair over and over (an ip6 filter table the check believed in, while this host has none).
    await new Promise((r) => setTimeout(r, 1500));
    t.same(
      daemon.lines().filter((l) => l.healed),
      [],
      'an undisturbed host: nothing to put back',
    );
    const nft = (...args: string[]) => host.run('nft', args);
    const other = await nft('list', 'table', 'inet', 'other');
    await measure(
      t,
      'nft delete table ip pipewright',
      () => nft('delete', 'table', ...firewallNamesOf(dir).nft4.split(' ')),
      probe,
      daemon,
      host,
    );
    t.equal(await nft('list', 'table', 'inet', 'other'), other, "another program's table is as it was");
    await measure(t, 'nft flush ruleset', () => nft('flush', 'ruleset'), probe, daemon, host);
    const ip = (...args: string[]) => host.run('ip', args);
    await measure(
      t,
      'bridge address removed',
      () => ip('address', 'del', '10.247.61.1/24', 'dev', 'bra'),
      probe,
      daemon,
      host,
    );
    await measure(t, 'bridge deleted', () => ip('link', 'del', 'bra'), probe, daemon, host);

    // Without the daemon nothing comes back: the probes above measured its repairs.
    daemon.proc.kill('SIGTERM');
    await daemon.proc;
    await nft('flush', 'ruleset');
    const after = await probe(Date.now() - 3500);
    t.equal(after.port, -1, 'with no daemon, the published port stays dead after a flush');
  },
);

t.test('iptables backend: filter and nat tables flushed', { skip: !isRoot && ROOT_REASON }, async (t) => {
  const host = await testHost(t, { dockerForwardDrop: true });
  const { dir, probe } = await setUp(t, host, 'iptables');
  const ipt = (...args: string[]) => host.run('iptables', ['-w', ...args]);
  await ipt('-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-m', 'comment', '--comment', 'not-pipewright', '-j', 'ACCEPT');
  const daemon = await daemonIn(t, host, dir, 'iptables');
  const first = await probe(Date.now());
  t.ok(first.port >= 0 && first.ping >= 0, 'port and ping answer before any disruption');
  await measure(t, 'iptables -t nat -F', () => ipt('-t', 'nat', '-F'), probe, daemon, host);
  t.match(await ipt('-S', 'INPUT'), /not-pipewright/, "another program's rule is still there");
  await measure(t, 'iptables -F', () => ipt('-F'), probe, daemon, host);

  daemon.proc.kill('SIGTERM');
  await daemon.proc;
  await ipt('-F');
  const after = await probe(Date.now() - 3500);
  t.ok(after.port === -1 && after.ping === -1, 'with no daemon, port and ping stay dead after iptables -F');
});

t.test(
  'a port goes back by its recorded index, not by a name another link took',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', 'nftables', ...args]);
    const g = await netns(t);
    for (const args of [
      ['pool', 'create', 'hc', '10.247.63.0/24'],
      ['network', 'create', 'nc', '--bridge', 'brc', '--pool', 'hc'],
    ])
      t.equal((await pw(...args)).exitCode, 0);
    const r = await pw('attach', 'brc', g, 'pool:hc', '--json');
    t.equal(r.exitCode, 0, r.stderr);
    const hostEnd = JSON.parse(r.stdout).hostLink as string;
    const ip = (...args: string[]) => host.run('ip', args);
    const link = async (which: string) => JSON.parse(await ip('-j', 'link', 'show', which))[0];
    const ours = (await link(hostEnd)).ifindex as number;
    const daemon = await daemonIn(t, host, dir, 'nftables');
    // Ours renamed, and another veth (on no bridge) by its name: the name now points at the wrong link.
    await ip('link', 'set', hostEnd, 'down');
    await ip('link', 'set', hostEnd, 'name', 'pwmoved');
    await ip('link', 'set', 'pwmoved', 'up');
    await ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'pwother');
    await ip('link', 'del', 'brc');
    const back = await until(async () => (await link('pwmoved')).master === 'brc', 5000);
    t.not(back, -1, `our host end, renamed, is on the bridge again (${back} ms)`);
    t.equal((await link('pwmoved')).ifindex, ours);
    t.equal((await link(hostEnd)).master, undefined, 'the veth that took its name is on no bridge');
    t.ok(daemon.healed() > 0, 'the daemon logged the repair');
    await ip('link', 'del', hostEnd);
    t.equal((await pw('detach', g)).exitCode, 0);
  },
);
