/**
 * The chaos suite (`npm run chaos`, root): the README's guarantees under many processes at once,
 * faults at every named step, and kill -9 at random times. It asserts invariants of the host and
 * the store, not exit codes:
 *
 *   - no IPv4 address twice in the kernel (across the guests) or in the leases
 *   - every lease has an attachment or is a reservation
 *   - every ready record matches the kernel (ls says ok)
 *   - after teardown and gc: no link, rule, lease, attachment or volume directory is left
 *
 * CHAOS_N operations per backend (default 200), CHAOS_K processes at once (default 6). The daemon's
 * part (daemon.ts): pipewright daemon killed -9 at each step of its Docker and CNI calls.
 */
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startEtcd } from '../helpers/etcd.js';
import {
  CLI,
  cli,
  firewallSnapshot,
  hostLinks,
  isRoot,
  must,
  netns,
  ROOT_REASON,
  sh,
  stateDir,
  uniq,
} from '../helpers/host.js';
// The daemon's part: kill -9 at each step of its Docker plugin calls and CNI verbs.
import './daemon.js';

const N = Number(process.env.CHAOS_N ?? 200);
const K = Number(process.env.CHAOS_K ?? 6);
const figures = {
  operations: 0,
  rounds: 0,
  unexpectedErrors: 0,
  steps: 0,
  faults: 0,
  kills: 0,
  leaks: 0,
  duplicates: 0,
};
const skip = !isRoot && ROOT_REASON;

type Pw = (args: string[], env?: Record<string, string>) => ReturnType<typeof cli>;

const json = async (pw: Pw, args: string[]) => JSON.parse((await pw([...args, '--json'])).stdout || '[]');
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];

/** IPv4 addresses each guest's kernel holds (eth0/eth1). */
async function kernelAddresses(guests: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const g of guests) {
    const links = JSON.parse((await sh('ip', ['-n', g, '-j', '-4', 'address', 'show'])).stdout || '[]');
    for (const l of links) if (l.ifname !== 'lo') for (const a of l.addr_info ?? []) out.push(a.local);
  }
  return out;
}

/** What is wrong with the host and the store right now; empty when every invariant holds. */
async function problems(pw: Pw, guests: string[]): Promise<string[]> {
  const found: string[] = [];
  const attachments = await json(pw, ['ls']);
  const leases: { pool: string; address: string; owner: string; reserved: boolean }[] = await json(pw, ['lease', 'ls']);
  const twice = (xs: string[]) => xs.filter((x, i) => xs.indexOf(x) !== i);
  const dupLeases = twice(leases.map((l) => `${l.pool} ${l.address}`));
  const dupKernel = twice(await kernelAddresses(guests));
  figures.duplicates += dupLeases.length + dupKernel.length;
  found.push(...dupLeases.map((d) => `leased twice: ${d}`), ...dupKernel.map((d) => `in two guests at once: ${d}`));
  const owners = new Set(
    attachments.map(
      (a: { guest: { kind: string; id: string }; ifname: string }) => `${a.guest.kind}:${a.guest.id}/${a.ifname}`,
    ),
  );
  const orphans = leases.filter((l) => !l.reserved && !owners.has(l.owner));
  figures.leaks += orphans.length;
  found.push(...orphans.map((l) => `lease ${l.address} of ${l.owner} has no attachment`));
  for (const a of attachments)
    if (a.state === 'ready' && a.status !== 'ok') found.push(`${a.guest.name} ${a.ifname}: ${a.status} (${a.reason})`);
  return found;
}

/** After teardown: nothing of the run left on the host. */
async function leftovers(dir: string, pw: Pw, links: string[], rules: string): Promise<string[]> {
  const found: string[] = [];
  const nowLinks = await hostLinks();
  const extra = nowLinks.filter((l) => !links.includes(l));
  if (extra.length) found.push(`links left: ${extra.join(' ')}`);
  if ((await firewallSnapshot()) !== rules) found.push('the rule set differs from before');
  if ((await json(pw, ['lease', 'ls'])).length) found.push('leases left');
  if ((await json(pw, ['ls'])).length) found.push('attachments left');
  const vols = join(dir, 'volumes');
  if (existsSync(vols) && readdirSync(vols).length)
    found.push(`volume directories left: ${readdirSync(vols).join(' ')}`);
  figures.leaks += found.length;
  return found;
}

/** A failure that is a refusal the operation owes the user, not a sign of a race. */
const REFUSAL =
  /already has|another pipewright|still has|in use|exists already|no network named|no volume named|has no attachment|already uses|is taken by|not leased|nothing changed|exhausted/;

async function concurrency(t: Test, store: 'sqlite' | 'etcd') {
  const dir = stateDir(t);
  const etcd = store === 'etcd' ? await startEtcd(t) : null;
  const pw: Pw = (args, env) => cli(dir, [...(etcd ? ['--store', `etcd://${etcd}`] : []), ...args], env);
  const [b1, b2, b3] = [uniq('X'), uniq('Y'), uniq('Z')];
  t.teardown(async () => {
    for (const b of [b1, b2, b3]) await sh('ip', ['link', 'del', b]);
  });
  const links = await hostLinks();
  const rules = await firewallSnapshot();
  const guests = await Promise.all(Array.from({ length: 12 }, () => netns(t)));
  await pw(['pool', 'create', 'p1', '10.248.0.0/22']);
  await pw(['pool', 'create', 'p2', '10.248.8.0/24']);
  await pw(['network', 'create', 'n1', '--bridge', b1, '--pool', 'p1', '--masquerade']);
  const applyFile = join(dir, 'host.yaml');
  writeFileSync(applyFile, 'pools: [{ name: p3, subnet: 10.248.12.0/24 }]\nvolumes: [{ name: va }]\n');
  const ops: (() => string[])[] = [
    () => ['attach', b1, pick(guests), 'pool:p1'],
    () => {
      const i = Math.floor(Math.random() * guests.length);
      return ['attach', b2, guests[i], `10.249.0.${i + 2}/24`, '-i', 'eth1'];
    },
    () => ['detach', pick(guests)],
    () => ['gc'],
    () => ['volume', 'create', pick(['v0', 'v1', 'v2'])],
    () => ['volume', 'rm', pick(['v0', 'v1', 'v2'])],
    () => ['network', 'create', 'n2', '--bridge', b3, '--pool', 'p2'],
    () => ['network', 'rm', 'n2'],
    () => ['apply', '-f', applyFile],
  ];
  for (let done = 0; done < N; done += K) {
    const batch = Array.from({ length: Math.min(K, N - done) }, () => pick(ops)());
    const results = await Promise.all(batch.map((args) => pw(args)));
    for (const [i, r] of results.entries()) {
      if (r.exitCode === 0 || REFUSAL.test(r.stderr)) continue;
      figures.unexpectedErrors++;
      t.comment(`unexpected: ${batch[i].join(' ')} -> ${r.stderr.trim()}`);
    }
    figures.operations += batch.length;
    figures.rounds++;
    const wrong = await problems(pw, guests);
    if (wrong.length) t.fail(`round ${figures.rounds} (${store}): ${wrong.join('; ')}`);
  }
  for (const g of guests) await pw(['detach', g]);
  for (const n of ['n1', 'n2']) await pw(['network', 'rm', n]);
  for (const v of ['v0', 'v1', 'v2', 'va']) await pw(['volume', 'rm', '-f', v]);
  await pw(['gc']);
  t.same(await leftovers(dir, pw, links, rules), [], `${store}: after teardown and gc nothing is left`);
  t.pass(`${store}: ${N} operations, ${K} at a time`);
}

t.test('many processes at once: invariants after every round (SQLite)', { skip }, (t) => concurrency(t, 'sqlite'));
/**
 * Host state: the same mix on a host that has an ip6 filter table (as where ip6tables is in use)
 * when this one has none. A table that exists already cannot be taken away from its owner, so on
 * such a host the run above covered it and this variant is skipped.
 */
t.test('many processes at once, with a pre-existing ip6 filter table (SQLite)', { skip }, async (t) => {
  if ((await sh('nft', ['list', 'table', 'ip6', 'filter'])).exitCode === 0) {
    t.pass('this host has an ip6 filter table already: the run above was that case');
    return;
  }
  const table = 'table ip6 filter {\n chain FORWARD {\n type filter hook forward priority 0; policy accept;\n }\n}\n';
  await must('nft', ['-f', '-'], table);
  t.teardown(() => sh('nft', ['delete', 'table', 'ip6', 'filter']));
  await concurrency(t, 'sqlite');
});
t.test(
  'many processes at once: invariants after every round (etcd)',
  { skip: skip || (!existsSync('/usr/bin/etcd') && 'etcd is not installed') },
  (t) => concurrency(t, 'etcd'),
);

/** One command under fault injection: its setup, what "fully done" means, and how to take it back. */
interface Scenario {
  name: string;
  setup(pw: Pw, guest: string): Promise<void>;
  command(guest: string): string[];
  done(pw: Pw, guest: string): Promise<boolean>;
  undo(pw: Pw, guest: string): Promise<void>;
}

const inKernel = async (guest: string, prefix: string) =>
  (await kernelAddresses([guest])).some((a) => a.startsWith(prefix));

function scenarios(bridge: string, netBridge: string): Scenario[] {
  const attached = async (pw: Pw, guest: string) =>
    (await json(pw, ['ls'])).some(
      (a: { guest: { name: string }; status: string }) => a.guest.name === guest && a.status === 'ok',
    );
  const network = async (pw: Pw) => {
    await pw(['pool', 'create', 'pn', '10.250.4.0/24']);
    await pw(['network', 'create', 'nn', '--bridge', netBridge, '--pool', 'pn']);
  };
  const noNetwork = async (pw: Pw) => {
    await pw(['network', 'rm', 'nn']);
    await pw(['pool', 'rm', 'pn', '--force']);
  };
  return [
    {
      name: 'attach to a new bridge',
      setup: async () => {},
      command: (g) => ['attach', bridge, g, '10.250.0.2/24'],
      done: async (pw, g) => (await attached(pw, g)) && (await inKernel(g, '10.250.0.2')),
      undo: async (pw, g) => void (await pw(['detach', g])),
    },
    {
      name: 'attach from a pool with a published port',
      setup: (pw) => network(pw),
      command: (g) => ['attach', netBridge, g, 'pool:pn', '-p', '18240:80'],
      done: async (pw, g) =>
        (await attached(pw, g)) && (await inKernel(g, '10.250.4.')) && (await json(pw, ['ports'])).length === 1,
      undo: async (pw, g) => {
        await pw(['detach', g]);
        await noNetwork(pw);
      },
    },
    {
      name: 'detach',
      setup: async (pw, g) => {
        await network(pw);
        await pw(['attach', netBridge, g, 'pool:pn', '-p', '18241:80']);
      },
      command: (g) => ['detach', g],
      done: async (pw, g) =>
        !(await attached(pw, g)) && !(await inKernel(g, '10.250.4.')) && (await json(pw, ['lease', 'ls'])).length === 0,
      undo: (pw) => noNetwork(pw),
    },
    {
      name: 'network create',
      setup: async (pw) => void (await pw(['pool', 'create', 'pn', '10.250.4.0/24'])),
      command: () => ['network', 'create', 'nn', '--bridge', netBridge, '--pool', 'pn', '--masquerade'],
      done: async (pw) =>
        (await json(pw, ['network', 'ls'])).length === 1 &&
        (await sh('ip', ['link', 'show', netBridge])).exitCode === 0,
      undo: (pw) => noNetwork(pw),
    },
    {
      name: 'network rm',
      setup: (pw) => network(pw),
      command: () => ['network', 'rm', 'nn'],
      done: async (pw) =>
        (await json(pw, ['network', 'ls'])).length === 0 &&
        (await sh('ip', ['link', 'show', netBridge])).exitCode !== 0,
      undo: async (pw) => void (await pw(['pool', 'rm', 'pn', '--force'])),
    },
    {
      name: 'volume create (tmpfs)',
      setup: async () => {},
      command: () => ['volume', 'create', 'cv', '--opt', 'type=tmpfs,o=size=1m'],
      done: async (pw) => (await json(pw, ['volume', 'ls'])).length === 1,
      undo: async (pw) => void (await pw(['volume', 'rm', 'cv'])),
    },
    {
      name: 'volume rm',
      setup: async (pw) => void (await pw(['volume', 'create', 'cv', '--opt', 'type=tmpfs,o=size=1m'])),
      command: () => ['volume', 'rm', 'cv'],
      done: async (pw) => (await json(pw, ['volume', 'ls'])).length === 0,
      undo: async () => {},
    },
  ];
}

/** The named steps a command passes through (PIPEWRIGHT_FAULT_TRACE), learnt from a run without faults. */
async function stepsOf(pw: Pw, s: Scenario, guest: string): Promise<string[]> {
  const trace = join(mkdtempSync(join(tmpdir(), 'pipewright-trace-')), 'steps');
  await s.setup(pw, guest);
  await pw(s.command(guest), { PIPEWRIGHT_FAULT_TRACE: trace });
  await s.undo(pw, guest);
  await pw(['gc']);
  const steps = existsSync(trace) ? [...new Set((await must('cat', [trace])).split('\n').filter(Boolean))] : [];
  rmSync(join(trace, '..'), { recursive: true, force: true });
  return steps;
}

t.test(
  'a fault at every named step: then gc, then the same command again: done, never in between',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const pw: Pw = (args, env) => cli(dir, args, env);
    const [bridge, netBridge] = [uniq('F'), uniq('G')];
    t.teardown(async () => {
      for (const b of [bridge, netBridge]) await sh('ip', ['link', 'del', b]);
    });
    const guest = await netns(t);
    const links = await hostLinks();
    const rules = await firewallSnapshot();
    for (const s of scenarios(bridge, netBridge)) {
      const steps = await stepsOf(pw, s, guest);
      t.ok(steps.length > 0, `${s.name}: ${steps.length} named steps`);
      for (const step of steps) {
        for (const action of ['fail', 'crash'] as const) {
          figures.faults++;
          await s.setup(pw, guest);
          await pw(s.command(guest), { PIPEWRIGHT_FAULT: `${step}:${action}` });
          await pw(['gc']);
          await pw(s.command(guest));
          t.ok(await s.done(pw, guest), `${s.name}, ${action} at "${step}": gc and a second run finish it`);
          await s.undo(pw, guest);
          await pw(['gc']);
          const left = await leftovers(dir, pw, links, rules);
          if (left.length) t.fail(`${s.name}, ${action} at "${step}": ${left.join('; ')}`);
        }
      }
      figures.steps += steps.length;
    }
  },
);

t.test('kill -9 at random times during attach: gc leaves it either done or gone', { skip }, async (t) => {
  const dir = stateDir(t);
  const pw: Pw = (args, env) => cli(dir, args, env);
  const br = uniq('R');
  t.teardown(() => sh('ip', ['link', 'del', br]));
  const links = await hostLinks();
  const rules = await firewallSnapshot();
  const guests = await Promise.all(Array.from({ length: 4 }, () => netns(t)));
  await pw(['pool', 'create', 'pk', '10.250.8.0/24']);
  await pw(['network', 'create', 'nk', '--bridge', br, '--pool', 'pk']);
  const rounds = Math.max(8, Math.round(N / 10));
  for (let i = 0; i < rounds; i++) {
    const g = guests[i % guests.length];
    const child = execa(CLI, ['attach', br, g, 'pool:pk', '-p', `${18250 + (i % guests.length)}:80`], {
      reject: false,
      env: { PIPEWRIGHT_STATE_DIR: dir },
    });
    await new Promise((r) => setTimeout(r, Math.random() * 200));
    child.kill('SIGKILL');
    await child;
    figures.kills++;
    await pw(['gc']);
    const wrong = await problems(pw, guests);
    if (wrong.length) t.fail(`kill ${i}: ${wrong.join('; ')}`);
    if (i % 2) await pw(['detach', g]);
  }
  for (const g of guests) await pw(['detach', g]);
  await pw(['network', 'rm', 'nk']);
  await pw(['pool', 'rm', 'pk']);
  await pw(['gc']);
  t.same(await leftovers(dir, pw, links, rules), [], `${rounds} kills: nothing left after teardown and gc`);
});

t.test('first use: a fresh state dir and a new bridge, many attaches at once', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-first-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const br = uniq('N');
  t.teardown(() => sh('ip', ['link', 'del', br]));
  const guests = await Promise.all(Array.from({ length: 2 * K }, () => netns(t)));
  const results = await Promise.all(guests.map((g, i) => cli(dir, ['attach', br, g, `10.250.12.${i + 2}/24`])));
  t.same(
    results.filter((r) => r.exitCode !== 0).map((r) => r.stderr.trim()),
    [],
    `${guests.length} attaches to a new bridge in a new state dir`,
  );
  await Promise.all(guests.map((g) => cli(dir, ['detach', g])));
  t.equal((await sh('ip', ['link', 'show', br])).exitCode, 1, 'the bridge went with its last guest');
});

t.teardown(() => {
  const f = figures;
  console.log(
    `# chaos: ${f.operations} operations in ${f.rounds} rounds of ${K} processes; ${f.steps} steps x 2 faults = ${f.faults} injections; ` +
      `${f.kills} kills; unexpected errors ${f.unexpectedErrors}; leaks found ${f.leaks}; duplicates ${f.duplicates}`,
  );
});
