#!/usr/bin/env node
// `npm run bench` (root): pipewright against the CNI reference plugins (/usr/lib/cni) on this
// machine, scenario by scenario, the two interleaved guest by guest. Prints one table (median,
// p95, ratio pipewright/CNI, target) and writes bench/results.json. Cleans up after itself and
// refuses to run where its name prefix is in use. BENCH_N sets N (default 100).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Store } from '../dist/db/store.js';
import { Ipam } from '../dist/net/ipam/allocator.js';
import { SqliteLeaseBackend } from '../dist/db/ipam-backend.js';
import { changeFirewall } from '../dist/ops/firewall-sync.js';
import { listAttachments } from '../dist/db/attachments.js';
import { deletePortsOf, insertPort } from '../dist/db/networks.js';
import {
  checkPrefixFree,
  cleanupHost,
  cni,
  guestName,
  makeGuests,
  pipewright,
  portmapBaseState,
  PREFIX,
  progress,
  removePortmapBase,
  sh,
  stats,
  timed,
  timedAsync,
  withWarmWorkers,
} from './lib.mjs';
import { dockerRun } from './docker-run.mjs';
import { fleet } from './fleet.mjs';
import { cniAddDel } from './cni.mjs';
import { floorRatio, judge, overFloor, ratioAtMost, scaleTarget } from './targets.mjs';
import { writePerformancePage } from './report.mjs';

const N = Number(process.env.BENCH_N ?? 100);
// BENCH_ONLY=fleet,docker-run runs those groups of scenarios alone: their rows replace theirs in the
// last results.json, the other rows stay as they were measured.
const ONLY = process.env.BENCH_ONLY?.split(',').filter(Boolean) ?? null;
const tmp = mkdtempSync(join(tmpdir(), 'pipewright-bench-'));
const results = [];
/** A row: pipewright's times, the compared tool's (or null), its target (targets.mjs) or null. */
const record = (scenario, pw, cniTimes, target, extra = {}) => {
  const p = stats(pw);
  const c = cniTimes && stats(cniTimes);
  results.push({
    scenario,
    n: p.n,
    pipewright: p,
    cni: c ?? null,
    ratio: c ? p.median / c.median : null,
    target,
    ...extra,
  });
};

const bridgeConf = (bridge, subnet, data) => ({
  cniVersion: '0.4.0',
  name: `${PREFIX}net`,
  type: 'bridge',
  bridge,
  ipam: { type: 'host-local', subnet, dataDir: data },
});

/**
 * attach and detach through the CLI: first each guest two ways in turn, the CLI in its own Node
 * process (no daemon on the host) and CNI bridge; then through a daemon's warm workers (the
 * figure the floor + 15 ms target is for). Apart, as for the other CLI rows (cliCommands).
 */
async function attachCli(state) {
  pipewright(state, 'pool', 'create', 'b', '10.240.0.0/16');
  for (const set of ['p', 'w', 'c']) makeGuests(set, N);
  const conf = bridgeConf(`${PREFIX}c`, '10.241.0.0/16', join(tmp, 'cni-b'));
  const verbs = [
    ['attach', 'ADD', (set, i) => ['attach', `${PREFIX}p`, `netns:${guestName(set, i)}`, 'pool:b']],
    ['detach', 'DEL', (set, i) => ['detach', `netns:${guestName(set, i)}`]],
  ];
  const own = { attach: [[], []], detach: [[], []], floor: [] };
  for (const [verb, cniCommand, args] of verbs) {
    for (let i = 0; i < N; i++) {
      progress(`${verb}-cli (no daemon)`, i + 1, N);
      own.floor.push(timed(() => sh('node', ['-e', '0'])));
      own[verb][0].push(timed(() => pipewright(state, ...args('p', i))));
      own[verb][1].push(timed(() => cni('bridge', cniCommand, conf, `c${i}`, `/run/netns/${guestName('c', i)}`)));
    }
  }
  const warm = await withWarmWorkers(state, tmp, (run) => {
    const t = { attach: [], detach: [], floor: [] };
    for (const [verb, , args] of verbs) {
      for (let i = 0; i < N; i++) {
        progress(`${verb}-cli`, i + 1, N);
        t.floor.push(timed(() => sh('node', ['-e', '0'])));
        t[verb].push(timed(() => run(...args('w', i))));
      }
    }
    return t;
  });
  for (const verb of ['attach', 'detach']) {
    record(`${verb}-cli`, warm[verb], own[verb][1], overFloor(15), { floor: stats(warm.floor).median });
    record(`${verb}-cli (no daemon)`, own[verb][0], own[verb][1], floorRatio(2), { floor: stats(own.floor).median });
  }
  return own.attach[1];
}

/** N guests through the library in one process (its own, for its peak RSS). */
function batch(state, set, count, hostIf, pool) {
  makeGuests(set, count);
  const r = spawnSync('node', ['bench/batch-worker.mjs', state, hostIf, set, String(count), pool], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

function attachBatch(state, cniAdds) {
  const res = batch(state, 'l', N, `${PREFIX}l`, 'b');
  results.push({
    scenario: 'attach-batch (per guest)',
    n: N,
    pipewright: { median: res.perGuestMs, p95: null },
    cni: stats(cniAdds),
    ratio: res.perGuestMs / stats(cniAdds).median,
    target: ratioAtMost(0.5, 'CNI bridge'),
    peakRssMb: res.maxRssMb,
  });
}

async function ipamAlloc(state) {
  const store = Store.open(join(tmp, 'ipam'));
  const ipam = new Ipam(new SqliteLeaseBackend(store));
  await ipam.createPool({ name: 'a', cidr: '10.242.0.0/16' });
  const lib = [];
  for (let i = 0; i < N; i++) lib.push(await timedAsync(() => ipam.allocate('a', 'bench')));
  store.close();
  pipewright(state, 'pool', 'create', 'cli', '10.243.0.0/16');
  const warmTimes = [],
    coldTimes = [],
    hl = [];
  const conf = {
    cniVersion: '0.4.0',
    name: `${PREFIX}ipam`,
    ipam: { type: 'host-local', subnet: '10.244.0.0/16', dataDir: join(tmp, 'cni-ipam') },
  };
  await withWarmWorkers(state, tmp, (warm) => {
    for (let i = 0; i < N; i++) {
      progress('ipam-alloc', i + 1, N);
      warmTimes.push(timed(() => warm('lease', 'reserve', 'cli', '--owner', 'bench')));
      coldTimes.push(timed(() => pipewright(state, 'lease', 'reserve', 'cli', '--owner', 'bench')));
      hl.push(timed(() => cni('host-local', 'ADD', conf, `h${i}`, '/proc/self/ns/net')));
    }
  });
  record('ipam-alloc library', lib, hl, ratioAtMost(0.02, 'host-local (50x faster)'));
  record('ipam-alloc cli', warmTimes, hl, overFloor(15));
  record('ipam-alloc cli (no daemon)', coldTimes, hl, null);
}

/** One port per guest on N guests, then one more with 2,000 published (nftables). */
async function publish(state) {
  const store = Store.open(state);
  const ids = listAttachments(store)
    .filter((a) => a.hostIf === `${PREFIX}l`)
    .map((a) => a.id);
  const port = (id, hostPort, count = 1) => ({
    attachmentId: id,
    guestName: 'bench',
    bridge: `${PREFIX}l`,
    proto: 'tcp',
    hostIp: '',
    hostPort,
    hostPortEnd: hostPort + count - 1,
    ctrIp: '10.240.0.2',
    ctrSubnet: '10.240.0.0/16',
    ctrPort: hostPort,
  });
  const change = (mutate) => changeFirewall(store, mutate, { firewall: 'nftables' });
  const pw = [],
    pm = [];
  for (let i = 0; i < N; i++) {
    progress('publish', i + 1, N);
    pw.push(await timedAsync(() => change(() => insertPort(store, port(ids[i], 30000 + i)))));
    const conf = {
      cniVersion: '0.4.0',
      name: `${PREFIX}pm`,
      type: 'portmap',
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 31000 + i, containerPort: 80, protocol: 'tcp' }] },
      prevResult: {
        cniVersion: '0.4.0',
        interfaces: [{ name: 'eth0', sandbox: '/run/netns/x' }],
        ips: [{ version: '4', address: `10.241.0.${(i % 250) + 2}/16`, interface: 0 }],
      },
    };
    pm.push(timed(() => cni('portmap', 'ADD', conf, `pm${i}`, '/run/netns/x')));
  }
  record('publish (per guest)', pw, pm, null);
  for (const id of ids) await change(() => deletePortsOf(store, id));
  const one = async () => {
    const t = [];
    for (let r = 0; r < 10; r++) {
      t.push(await timedAsync(() => change(() => insertPort(store, port(ids[0], 40000)))));
      await change(() => deletePortsOf(store, ids[0]));
    }
    return t;
  };
  const none = await one();
  await change(() => insertPort(store, port(ids[1], 20000, 2000)));
  const many = await one();
  await change(() => deletePortsOf(store, ids[1]));
  store.close();
  results.push({
    scenario: 'publish one more, 2,000 published vs none',
    n: 10,
    pipewright: stats(many),
    cni: null,
    ratio: stats(many).median / stats(none).median,
    target: ratioAtMost(2, 'with none published'),
    baseline: stats(none),
  });
  for (let i = 0; i < N; i++) {
    cni(
      'portmap',
      'DEL',
      {
        cniVersion: '0.4.0',
        name: `${PREFIX}pm`,
        type: 'portmap',
        capabilities: { portMappings: true },
        runtimeConfig: { portMappings: [{ hostPort: 31000 + i, containerPort: 80, protocol: 'tcp' }] },
      },
      `pm${i}`,
      '/run/netns/x',
    );
  }
}

function macvlan(state) {
  sh('ip', ['link', 'add', `${PREFIX}m0`, 'type', 'veth', 'peer', 'name', `${PREFIX}m1`]);
  sh('ip', ['link', 'set', `${PREFIX}m0`, 'up']);
  pipewright(state, 'pool', 'create', 'm', '10.245.0.0/16');
  makeGuests('mp', N);
  makeGuests('mc', N);
  const conf = {
    cniVersion: '0.4.0',
    name: `${PREFIX}mv`,
    type: 'macvlan',
    master: `${PREFIX}m0`,
    mode: 'bridge',
    ipam: { type: 'host-local', subnet: '10.246.0.0/16', dataDir: join(tmp, 'cni-m') },
  };
  const pw = [],
    c = [];
  for (let i = 0; i < N; i++) {
    progress('macvlan-attach', i + 1, N);
    pw.push(timed(() => pipewright(state, 'attach', `${PREFIX}m0`, `netns:${guestName('mp', i)}`, 'pool:m')));
    c.push(timed(() => cni('macvlan', 'ADD', conf, `m${i}`, `/run/netns/${guestName('mc', i)}`)));
  }
  record('macvlan-attach', pw, c, null);
}

function scale() {
  const rows = [];
  for (const count of [1, 10, 100, 1000]) {
    progress('scale', count, 1000);
    const state = join(tmp, `scale-${count}`);
    pipewright(state, 'pool', 'create', 's', '10.247.0.0/16');
    rows.push({ guests: count, ...batch(state, `s${count}`, count, `${PREFIX}s${count}`, 's') });
  }
  const per10 = rows.find((r) => r.guests === 10).perGuestMs;
  const per1000 = rows.find((r) => r.guests === 1000).perGuestMs;
  results.push({
    scenario: 'scale 1,000 vs 10 guests (per guest)',
    n: 1000,
    pipewright: { median: per1000, p95: null },
    cni: null,
    ratio: per1000 / per10,
    target: scaleTarget(1.5, 200),
    rows,
    peakRssMb: Math.max(...rows.map((r) => r.maxRssMb)),
  });
}

/** Commands in a Node process of their own (no daemon), as ratios to `node -e 0`. */
const NO_DAEMON_TARGETS = {
  '--version (no daemon)': floorRatio(1.3),
  'ls (no daemon)': floorRatio(1.5),
  'pool ls (no daemon)': floorRatio(1.5),
};

/**
 * N rounds of `node -e 0` and then each command through `run`, sampled in turn so both see the
 * same machine; each round's volume and mount are removed after it. The floor's median and the times.
 */
function cliRounds(label, commands, run, state, holder) {
  const floor = [];
  const times = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
  for (let i = 0; i < N; i++) {
    progress(label, i + 1, N);
    floor.push(timed(() => sh('node', ['-e', '0'])));
    for (const [name, args] of Object.entries(commands)) times[name].push(timed(() => run(...args(i))));
    pipewright(state, 'unmount', `pid:${holder.pid}`, `/mnt/b${i}`);
    pipewright(state, 'volume', 'rm', `bv${i}`);
  }
  return { floor, times };
}

/**
 * Every CLI command beside Node's own floor (`node -e 0`): first each in a Node process of its own
 * with no daemon on the host (its rows' targets are ratios to the floor), then handed to a daemon's
 * warm workers (each median <= floor + 15 ms). Apart, not interleaved: a worker that took a command
 * is replaced at once, and its start would share the CPU with the next command of its own. A
 * store of its own with one guest (as a user's first steps; `ls` cost grows with the guests it
 * checks); `mount` goes into a process with its own mount namespace.
 */
async function cliCommands() {
  const state = join(tmp, 'cli');
  makeGuests('f', 1);
  const guest = `netns:${guestName('f', 0)}`;
  pipewright(state, 'attach', `${PREFIX}f`, guest, '10.246.0.2/24');
  const holder = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', '600'], { stdio: 'ignore' });
  try {
    spawnSync('sleep', ['0.2']);
    pipewright(state, 'volume', 'create', 'mv');
    const commands = {
      '--version': () => ['--version'],
      ls: () => ['ls'],
      inspect: () => ['inspect', guest],
      'pool ls': () => ['pool', 'ls'],
      'volume create': (i) => ['volume', 'create', `bv${i}`],
      mount: (i) => ['mount', `pid:${holder.pid}`, `mv:/mnt/b${i}`],
    };
    const own = cliRounds('cli (no daemon)', commands, (...args) => pipewright(state, ...args), state, holder);
    const warm = await withWarmWorkers(state, tmp, (run) => cliRounds('cli', commands, run, state, holder));
    record('cli-floor (node -e 0)', own.floor, null, null);
    for (const [name, xs] of Object.entries(own.times)) {
      const row = `${name} (no daemon)`;
      record(`cli ${row}`, xs, null, NO_DAEMON_TARGETS[row] ?? null, { floor: stats(own.floor).median });
    }
    for (const [name, xs] of Object.entries(warm.times))
      record(`cli ${name}`, xs, null, overFloor(15), { floor: stats(warm.floor).median });
  } finally {
    holder.kill('SIGKILL');
    pipewright(state, 'detach', guest);
  }
}

/** Each CLI row's median above `node -e 0`'s and as a ratio to it: the floor sampled in turn with the row, else the CLI rows' floor. */
function addOverFloor() {
  const cliFloor = results.find((r) => r.scenario.startsWith('cli-floor'))?.pipewright.median;
  for (const r of results) {
    if (!/^(cli |cni-\w+ \(no daemon)|-cli( \(no daemon\))?$|^ipam-alloc cli/.test(r.scenario)) continue;
    const floor = r.floor ?? cliFloor;
    if (floor === undefined) continue;
    r.overFloor = r.pipewright.median - floor;
    r.floorRatio = r.pipewright.median / floor;
  }
}

function printTable() {
  const f = (x) => (x === null || x === undefined ? '-' : x.toFixed(x < 10 ? 2 : 1));
  console.log(
    [
      'scenario'.padEnd(44),
      'pw median',
      'pw p95',
      '- floor',
      '/ floor',
      'cni median',
      'cni p95',
      'ratio',
      'target',
    ].join('  '),
  );
  for (const r of results) {
    if (r.skipped) {
      console.log(`${r.scenario.padEnd(44)}  skipped: ${r.skipped}`);
      continue;
    }
    console.log(
      [
        r.scenario.padEnd(44),
        f(r.pipewright.median).padStart(9),
        f(r.pipewright.p95).padStart(6),
        f(r.overFloor).padStart(7),
        f(r.floorRatio).padStart(7),
        f(r.cni?.median).padStart(10),
        f(r.cni?.p95).padStart(7),
        f(r.ratio).padStart(5),
        `${r.target ?? ''}${r.met === undefined ? '' : r.met ? ' (met)' : ' (MISSED)'}${r.peakRssMb ? `  (peak RSS ${r.peakRssMb.toFixed(0)} MB)` : ''}`,
      ].join('  '),
    );
  }
  console.log(
    "times in ms; - floor, / floor = median minus, over `node -e 0`; ratio = pipewright / CNI (scale: 1,000-guest / 10-guest per-guest cost; docker-run: / Docker's bridge)",
  );
}

const RESULTS = new URL('./results.json', import.meta.url);

/** The last run's rows, those of the groups run now replaced (each row keeps the date it was measured). */
function mergedWithLast(fresh) {
  const last = JSON.parse(readFileSync(RESULTS, 'utf8'));
  const kept = last.results.filter((r) => !ONLY.includes(r.group)).map((r) => ({ measured: last.date, ...r }));
  return [...kept, ...fresh];
}

/** What the figures were measured on: they compare within a run, not across machines. */
function hostFacts() {
  const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
  // The load when the run began: figures taken beside other work are slower and noisier.
  return { cores: availableParallelism(), kernel, node: process.version, loadAverage: loadavg()[0] };
}

checkPrefixFree();
const portmapLeftovers = portmapBaseState();
const state = join(tmp, 'state');
/** The scenarios by group, in the order they run (attach's guests are publish's). */
const GROUPS = {
  attach: async () => {
    const cniAdds = await attachCli(state);
    attachBatch(state, cniAdds);
    await publish(state);
  },
  cli: cliCommands,
  ipam: () => ipamAlloc(state),
  macvlan: () => macvlan(state),
  scale,
  cni: () => cniAddDel(N, tmp, join(tmp, 'cni'), record),
  'docker-run': () => dockerRun(N, join(tmp, 'docker'), results),
  fleet: () => fleet(join(tmp, 'fleet'), tmp, record, results),
};
const unknown = (ONLY ?? []).filter((g) => !(g in GROUPS));
if (unknown.length)
  throw new Error(`BENCH_ONLY: no group ${unknown.join(', ')}; the groups are ${Object.keys(GROUPS).join(', ')}`);
try {
  for (const [group, run] of Object.entries(GROUPS)) {
    if (ONLY && !ONLY.includes(group)) continue;
    const from = results.length;
    await run();
    for (const r of results.slice(from)) r.group = group;
  }
  addOverFloor();
  judge(results);
  printTable();
  const run = {
    date: new Date().toISOString(),
    n: N,
    host: hostFacts(),
    results: ONLY ? mergedWithLast(results) : results,
  };
  writeFileSync(RESULTS, JSON.stringify(run, null, 2) + '\n');
  writePerformancePage(run);
} finally {
  cleanupHost();
  removePortmapBase(portmapLeftovers);
  // Forget the bench's guests in each store; the firewall follows (its rules go, nobody else's).
  for (const dir of [
    state,
    join(tmp, 'cni'),
    join(tmp, 'fleet'),
    ...[1, 10, 100, 1000].map((c) => join(tmp, `scale-${c}`)),
  ]) {
    const store = Store.open(dir);
    await changeFirewall(
      store,
      () => store.db.exec('DELETE FROM ports; DELETE FROM attachments; DELETE FROM networks;'),
      { firewall: 'nftables' },
    );
    store.close();
  }
  rmSync(tmp, { recursive: true, force: true });
}
