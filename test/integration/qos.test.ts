/**
 * Route metrics and bandwidth limits per attachment, on a stand-in host, through the real CLI and
 * kernel. Metrics: a guest on two networks keeps the same default route (the lowest metric's)
 * through 100 restarts whatever order its interfaces come back in, where without metrics the last
 * one back wins; a metric changes in place. Rates: tc's objects on the host end and the ifb as
 * the store records them, a TCP stream between two guests within 10 % of each limit, a change in
 * place, and nothing left at detach.
 */
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { join } from 'node:path';
import { isRoot, must, netns, ROOT_REASON, stateDir, testHost } from '../helpers/host.js';
import { fileURLToPath } from 'node:url';

const STREAM = fileURLToPath(new URL('../helpers/stream.mjs', import.meta.url));
const skip = !isRoot && ROOT_REASON;

type Host = Awaited<ReturnType<typeof testHost>>;

/** The default route the guest takes to an outside address (a lookup: nothing is sent). */
async function defaultDev(g: string): Promise<string> {
  return JSON.parse(await must('ip', ['-n', g, '-j', 'route', 'get', '192.0.2.1']))[0].dev;
}

async function defaults(g: string): Promise<{ dev: string; metric?: number }[]> {
  return JSON.parse(await must('ip', ['-n', g, '-j', 'route', 'show', 'default']));
}

t.test('metrics: the same default route after 100 restarts in any order', { skip }, async (t) => {
  const host = await testHost(t);
  const dir = stateDir(t);
  const pw = (...args: string[]) => host.cli(dir, args);
  const g = await netns(t, 'g');
  const attachOf = (metrics: boolean) => ({
    eth0: ['attach', 'br0', g, '10.236.0.2/24@10.236.0.1', '-i', 'eth0', ...(metrics ? ['--metric', '200'] : [])],
    eth1: ['attach', 'br1', g, '10.237.0.2/24@10.237.0.1', '-i', 'eth1', ...(metrics ? ['--metric', '100'] : [])],
  });
  /** The guest restarts: its interfaces are gone, then come back (attach finds them lost) in this order. */
  const restart = async (order: ('eth0' | 'eth1')[], metrics: boolean) => {
    for (const i of ['eth0', 'eth1']) await must('ip', ['-n', g, 'link', 'del', i]);
    for (const i of order) {
      const r = await pw(...attachOf(metrics)[i]);
      if (r.exitCode !== 0) throw new Error(r.stderr);
    }
    return defaultDev(g);
  };

  // Without metrics the default route is whichever interface came back last.
  for (const i of ['eth0', 'eth1'] as const) t.equal((await pw(...attachOf(false)[i])).exitCode, 0);
  t.equal(await restart(['eth1', 'eth0'], false), 'eth0', 'no metric: eth0 back last holds the default route');
  t.equal(await restart(['eth0', 'eth1'], false), 'eth1', 'no metric: eth1 back last holds it');
  for (const i of ['eth0', 'eth1']) t.equal((await pw('detach', g, '-i', i)).exitCode, 0);

  for (const i of ['eth0', 'eth1'] as const) t.equal((await pw(...attachOf(true)[i])).exitCode, 0);
  t.same(
    (await defaults(g)).map((r) => [r.dev, r.metric]),
    [
      ['eth1', 100],
      ['eth0', 200],
    ],
    'both default routes, each with its metric',
  );
  const seen = new Map<string, number>();
  for (let cycle = 0; cycle < 100; cycle++) {
    const order: ('eth0' | 'eth1')[] = cycle % 2 ? ['eth0', 'eth1'] : ['eth1', 'eth0'];
    const dev = await restart(order, true);
    seen.set(dev, (seen.get(dev) ?? 0) + 1);
  }
  t.same([...seen], [['eth1', 100]], 'eth1 (metric 100) held the default route after each of 100 restarts');
  t.equal((await defaults(g)).length, 2, 'and no default route piled up');

  const r = await pw('attach', 'br0', g, '10.236.0.2/24@10.236.0.1', '-i', 'eth0', '--metric', '50', '--json');
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(JSON.parse(r.stdout).metric, 50);
  t.same(
    (await defaults(g)).map((x) => [x.dev, x.metric]),
    [
      ['eth0', 50],
      ['eth1', 100],
    ],
    'a new metric in place: eth0 now first, its metric 200 route gone',
  );
  t.equal(await defaultDev(g), 'eth0');
  for (const i of ['eth0', 'eth1']) t.equal((await pw('detach', g, '-i', i)).exitCode, 0);
});

/** The TCP rate (bits/s) from guest `from` to `addr` in guest `to`, over 5 s less the first. */
async function stream(t: Test, from: string, to: string, addr: string): Promise<number> {
  const sink = execa('ip', ['netns', 'exec', to, process.execPath, STREAM, 'sink', '5201'], { reject: false });
  t.teardown(() => {
    sink.kill('SIGKILL');
  });
  await new Promise<void>((resolve) => sink.stdout!.once('data', () => resolve()));
  await must('ip', ['netns', 'exec', from, process.execPath, STREAM, 'source', addr, '5201', '5']);
  return JSON.parse(
    String((await sink).stdout)
      .split('\n')
      .at(-1)!,
  ).bps;
}

const within = (t: Test, bps: number, limit: number, what: string) =>
  t.ok(
    Math.abs(bps - limit) <= limit * 0.1,
    `${what}: ${(bps / 1e6).toFixed(2)} Mbit/s for a ${limit / 1e6} Mbit/s limit`,
  );

const tcJson = (host: Host, what: string[]) => host.run('tc', ['-j', ...what]).then((s) => JSON.parse(s || '[]'));

interface Qdisc {
  kind: string;
  root?: boolean;
  options: { rate?: number; burst?: number };
}

t.test('rates: shaped both ways, changed in place, gone at detach', { skip }, async (t) => {
  const host = await testHost(t);
  const dir = stateDir(t);
  const pw = (...args: string[]) => host.cli(dir, args);
  const [a, b] = [await netns(t, 'a'), await netns(t, 'b')];
  const linksBefore = await host.links();
  const ra = await pw('attach', 'br0', a, '10.238.0.2/24', '--rate', '20mbit/10mbit', '--json');
  t.equal(ra.exitCode, 0, ra.stderr);
  t.equal((await pw('attach', 'br0', b, '10.238.0.3/24')).exitCode, 0);
  const hostEnd = JSON.parse(ra.stdout).hostLink as string;
  t.equal(JSON.parse(ra.stdout).rate, '20mbit/10mbit');

  const record = () =>
    new Database(join(dir, 'pipewright.db'), { readonly: true })
      .prepare('SELECT ifb_name AS name, ifb_index AS idx FROM attachments WHERE host_link = ?')
      .get(hostEnd) as { name: string | null; idx: number | null };
  const ifb = record();
  const [link] = JSON.parse(await host.run('ip', ['-j', '-d', 'link', 'show', ifb.name!]));
  t.equal(link.ifindex, ifb.idx, 'the store holds the ifb by its ifindex');
  t.equal(link.linkinfo.info_kind, 'ifb');

  const qdiscs: Qdisc[] = await tcJson(host, ['qdisc', 'show', 'dev', hostEnd]);
  const root = qdiscs.find((q) => q.root)!;
  t.equal(root.kind, 'tbf');
  t.equal(root.options.rate! * 8, 20e6, 'into the guest: a 20 Mbit/s bucket on the host end');
  t.equal(root.options.burst, 25000, '10 ms of it');
  t.ok(
    qdiscs.some((q) => q.kind === 'ingress'),
    'and an ingress qdisc',
  );
  const filters = await tcJson(host, ['filter', 'show', 'dev', hostEnd, 'ingress']);
  const action = filters.flatMap((f: { options?: { actions?: object[] } }) => f.options?.actions ?? [])[0];
  t.match(action, { kind: 'mirred', mirred_action: 'redirect', direction: 'egress', to_dev: ifb.name });
  const [ifbRoot]: Qdisc[] = await tcJson(host, ['qdisc', 'show', 'dev', ifb.name!, 'root']);
  t.equal(ifbRoot!.options.rate! * 8, 10e6, 'out of the guest: a 10 Mbit/s bucket on the ifb');

  within(t, await stream(t, b, a, '10.238.0.2'), 20e6, 'into the guest');
  within(t, await stream(t, a, b, '10.238.0.3'), 10e6, 'out of the guest');

  const again = await pw('attach', 'br0', a, '10.238.0.2/24', '--rate', '5mbit');
  t.equal(again.exitCode, 0, again.stderr);
  const now: Qdisc[] = await tcJson(host, ['qdisc', 'show', 'dev', hostEnd]);
  t.equal(now.find((q) => q.root)!.options.rate! * 8, 5e6, 'the bucket into the guest changed in place');
  t.notOk(
    now.some((q) => q.kind === 'ingress'),
    'no ingress qdisc once out of the guest is unlimited',
  );
  t.notOk((await host.links()).includes(ifb.name!), 'the ifb is gone');
  t.same(record(), { name: null, idx: null }, 'and forgotten');
  within(t, await stream(t, b, a, '10.238.0.2'), 5e6, 'into the guest, changed');
  t.ok((await stream(t, a, b, '10.238.0.3')) > 100e6, 'out of the guest, unlimited now');

  t.equal((await pw('attach', 'br0', a, '10.238.0.2/24', '--rate', '-/8mbit')).exitCode, 0);
  const ifb2 = record();
  t.ok(ifb2.name && (await host.links()).includes(ifb2.name), 'a new ifb for the new egress limit');
  for (const g of [a, b]) t.equal((await pw('detach', g)).exitCode, 0);
  t.same(await host.links(), linksBefore, 'no link left: host ends, bridge and ifb are gone');
});

t.test(
  'a failure after the ifb rolls it back; a crash leaves it to gc, which finds it by its record',
  { skip },
  async (t) => {
    const host = await testHost(t);
    const dir = stateDir(t);
    const g = await netns(t, 'c');
    const before = await host.links();
    const attach = (fault: string) =>
      host.cli(dir, ['attach', 'br0', g, '10.239.0.2/24', '--rate', '-/1mbit'], { PIPEWRIGHT_FAULT: fault });
    const failed = await attach('redirect :fail');
    t.equal(failed.exitCode, 1);
    t.match(failed.stderr, /injected fault at "redirect pw\w+'s ingress to pwi\w+"/);
    t.same(await host.links(), before, 'rolled back: no ifb, veth or bridge left');
    const crashed = await attach('create ifb:crash');
    t.not(crashed.exitCode, 0, 'killed right after the ifb was made, before its index was recorded');
    t.ok(
      (await host.links()).some((l) => l.startsWith('pwi')),
      'the ifb is there',
    );
    const gc = await host.cli(dir, ['gc']);
    t.equal(gc.exitCode, 0, gc.stderr);
    t.same(await host.links(), before, 'gc removed it with the rest of the attach');
    t.same(JSON.parse((await host.cli(dir, ['ls', '--json'])).stdout), []);
  },
);

t.test(
  'sbr: traffic from an address leaves by its own interface, across a restart; detach takes the rule',
  { skip },
  async (t) => {
    const host = await testHost(t);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, args);
    const g = await netns(t, 's');
    const eth0 = ['attach', 'br0', g, '10.236.0.2/24@10.236.0.1', '-i', 'eth0', '--metric', '100'];
    const eth1 = ['attach', 'br1', g, '10.237.0.2/24@10.237.0.1', '-i', 'eth1', '--metric', '200'];
    const from = async (src: string) =>
      JSON.parse(await must('ip', ['-n', g, '-j', 'route', 'get', '192.0.2.1', 'from', src]))[0].dev;
    const rulesOf = async (src: string) =>
      JSON.parse(await must('ip', ['-n', g, '-j', 'rule'])).filter((r: { src?: string }) => r.src === src);
    for (const args of [eth0, eth1]) t.equal((await pw(...args)).exitCode, 0);
    t.equal(await from('10.237.0.2'), 'eth0', "without sbr even eth1's address leaves by the main default (eth0)");
    t.equal((await pw('detach', g, '-i', 'eth1')).exitCode, 0);

    const r = await pw(...eth1, '--sbr', '--json');
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(JSON.parse(r.stdout).sbr, true);
    let table = '';
    const check = async (when: string) => {
      t.equal(await from('10.237.0.2'), 'eth1', `${when}: from eth1's address, out of eth1`);
      t.equal(await from('10.236.0.2'), 'eth0', `${when}: the rest by the main table`);
      const rules = await rulesOf('10.237.0.2');
      t.match(rules, [{ priority: 10000, table: /^1\d{4}$/ }], `${when}: one rule, at priority 10000`);
      t.equal(rules.length, 1);
      table ||= rules[0].table;
      t.equal(rules[0].table, table, `${when}: the attachment's own table, ${table}`);
      const routes = JSON.parse(await must('ip', ['-n', g, '-j', 'route', 'show', 'table', table]));
      t.match(routes, [
        { dst: 'default', gateway: '10.237.0.1', dev: 'eth1' },
        { dst: '10.237.0.0/24', dev: 'eth1' },
      ]);
    };
    await check('attached');
    for (const i of ['eth1', 'eth0']) await must('ip', ['-n', g, 'link', 'del', i]);
    for (const args of [[...eth1, '--sbr'], eth0]) t.equal((await pw(...args)).exitCode, 0);
    await check('restored in the same namespace');
    t.equal((await pw('detach', g, '-i', 'eth1')).exitCode, 0);
    t.same(await rulesOf('10.237.0.2'), [], 'detach removed the rule');
    t.equal((await pw('detach', g)).exitCode, 0);
  },
);

t.test('tune: a failure after the ifb went puts it back; a new ifb gets the redirect anew', { skip }, async (t) => {
  const host = await testHost(t);
  const dir = stateDir(t);
  const pw = (args: string[], env: Record<string, string> = {}) => host.cli(dir, args, env);
  const g = await netns(t, 'u');
  const before = await host.links();
  const attach = ['attach', 'br0', g, '10.240.0.2/24', '-i', 'eth0', '--rate'];
  const r = await pw([...attach, '20mbit/10mbit', '--json']);
  t.equal(r.exitCode, 0, r.stderr);
  const hostEnd = JSON.parse(r.stdout).hostLink as string;
  const record = () =>
    new Database(join(dir, 'pipewright.db'), { readonly: true })
      .prepare('SELECT ifb_name AS name, ifb_index AS idx FROM attachments WHERE host_link = ?')
      .get(hostEnd) as { name: string | null; idx: number | null };
  /** The egress path as the kernel holds it: the recorded ifb, its bucket, the host end's redirect. */
  const egress = async (mbit: number, when: string) => {
    const ifb = record();
    t.ok(ifb.name && ifb.idx, `${when}: an ifb recorded`);
    const [link] = JSON.parse(await host.run('ip', ['-j', '-d', 'link', 'show', ifb.name!]));
    t.match(link, { ifindex: ifb.idx, linkinfo: { info_kind: 'ifb' } }, `${when}: the ifb by its recorded index`);
    const [root]: Qdisc[] = await tcJson(host, ['qdisc', 'show', 'dev', ifb.name!, 'root']);
    t.equal(root!.options.rate! * 8, mbit * 1e6, `${when}: a ${mbit} Mbit/s bucket on it`);
    const filters = await tcJson(host, ['filter', 'show', 'dev', hostEnd, 'ingress']);
    const actions = filters.flatMap((f: { options?: { actions?: object[] } }) => f.options?.actions ?? []);
    t.match(actions, [{ kind: 'mirred', to_dev: ifb.name }], `${when}: the host end redirects to it`);
  };
  await egress(10, 'attached');

  const failed = await pw([...attach, '5mbit'], { PIPEWRIGHT_FAULT: "record eth0's new spec:fail" });
  t.equal(failed.exitCode, 1);
  t.match(failed.stderr, /injected fault at "record eth0's new spec"/);
  await egress(10, 'a tune that failed after lifting the limit');
  const [root]: Qdisc[] = await tcJson(host, ['qdisc', 'show', 'dev', hostEnd, 'root']);
  t.equal(root!.options.rate! * 8, 20e6, 'and the bucket into the guest as it was');
  t.match(JSON.parse((await pw(['ls', '--json'])).stdout), [{ rate: '20mbit/10mbit' }], 'the store as it was');

  await host.run('ip', ['link', 'del', record().name!]);
  const tuned = await pw([...attach, '20mbit/5mbit']);
  t.equal(tuned.exitCode, 0, tuned.stderr);
  await egress(5, 'its ifb deleted, then tuned');

  t.equal((await pw(['detach', g])).exitCode, 0);
  t.same(await host.links(), before, 'no link left');
});
