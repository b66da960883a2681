/**
 * A host reset, in the small form CI runs: one VM (Debian's stock kernel, etcd, pipewright's
 * daemon, containerd and dockerd, its /var/lib on a disk of its own), three --restart=always
 * containers started at the same moment: one on a pipewright macvlan network, one on a pipewright
 * bridge network, and a control on Docker's default bridge. Each prints its eth0 address at start.
 * (a) A reset after `sync`: all three come back, pipewright's on their addresses before their
 * commands run. (b) Three more, and a reset right after `docker run`: Docker may lose its record of
 * a start that new (its state file is renamed into place without a directory sync), and then never
 * restarts the container, whatever its network. pipewright's must fare as the control does: one
 * Docker forgot (created, never started, no error) when the control went too, or whose start Docker
 * recorded after the control's, is Docker's, reported; any other is pipewright's failure. Either way
 * nothing of pipewright's stays behind for what Docker forgot (lease, record, link, rule) once the
 * daemon's start sweep and `gc` have run.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { dumpHost, LAN, PIPEWRIGHT, startFarm, storeOf } from './farm.js';
import { accel, type Vm } from './vm.js';

const PW = `PIPEWRIGHT_STORE=${storeOf(1)} PIPEWRIGHT_ETCD_TIMEOUT_MS=30000 ${PIPEWRIGHT}`;
const BRIDGE_NET = '10.78.0';
const BRIDGE = 'pwrb0';

interface Spec {
  name: string;
  /** Docker's network, or '' for its default bridge (the control). */
  network: string;
  /** The address pipewright must give it; '' for the control (Docker's IPAM picks). */
  address: string;
}

const round = (r: 'a' | 'b', k: number): Spec[] => [
  { name: `${r}-mv`, network: 'mvnet', address: `${LAN}.${210 + k}` },
  { name: `${r}-br`, network: 'brnet', address: `${BRIDGE_NET}.${10 + k}` },
  { name: `${r}-ctl`, network: '', address: '' },
];

/** What Docker says of a container after the reset. */
interface Seen {
  status: string;
  startedAt: string;
  restarts: number;
  error: string;
  /** What it printed since the reset: its eth0 address at start. */
  printed: string;
}

/**
 * Docker's own record of the start lost (never started, as far as Docker knows: it never restarts
 * it), or of the container itself.
 */
const forgotten = (s: Seen) =>
  s.status === 'gone' || (s.status === 'created' && s.startedAt.startsWith('0001-01-01') && !s.error);
const secs = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
const isControl = (c: Spec) => c.network === '';

// Prints the address eth0 holds when its command starts, at every start. (\$4: the agent's bash
// reads the double-quoted command first, and must leave awk its $4.)
const SHOW = `ip -4 -o address show eth0 | awk '{print \\$4}'; exec sleep 100000`;

/**
 * `docker run` of all of them at once, each run's exit code checked; when each returned (guest
 * clock, s): a start Docker records later is nearer the reset, and likelier lost with it.
 */
async function runAll(vm: Vm, specs: Spec[]): Promise<Map<string, number>> {
  const run = (c: Spec) =>
    `docker run -d --restart=always ${c.network ? `--network ${c.network} --ip ${c.address}` : ''} --name ${c.name} ` +
    `pipewright-test/busybox:latest sh -c "${SHOW}" >/tmp/${c.name}.run 2>&1 || echo failed >>/tmp/${c.name}.run; ` +
    `date +%s.%N >/tmp/${c.name}.at`;
  const files = (ext: string) => specs.map((c) => `/tmp/${c.name}.${ext}`).join(' ');
  const out = await vm.must(
    `${specs.map((c) => `(${run(c)}) &`).join('\n')}\nwait\n! grep -l failed ${files('run')}\ncat ${files('at')}`,
  );
  const at = out.trim().split('\n').map(Number);
  return new Map(specs.map((c, i) => [c.name, at[i]!]));
}

/**
 * What Docker says of each container, in one guest script (each is a round trip through the
 * agent): a line each, `<State as JSON> <RestartCount>`, a tab, what it printed since `since`.
 */
async function seenAll(vm: Vm, specs: Spec[], since: number): Promise<Map<string, Seen>> {
  const line = (c: Spec) =>
    `docker inspect --format '{{json .State}} {{.RestartCount}}' ${c.name} 2>/dev/null | tr -d '\\n' || printf 'null 0'; ` +
    `printf '\\t'; docker logs --since ${since} ${c.name} 2>/dev/null | tr '\\n' ' '; echo`;
  const lines = (await vm.must(specs.map(line).join('\n'))).split('\n');
  return new Map(
    specs.map((c, i) => {
      const [inspected, printed = ''] = lines[i]!.split('\t');
      const cut = inspected!.lastIndexOf(' ');
      const state = JSON.parse(inspected!.slice(0, cut)) as { Status: string; StartedAt: string; Error: string } | null;
      const seen: Seen = state
        ? {
            status: state.Status,
            startedAt: state.StartedAt,
            restarts: Number(inspected!.slice(cut + 1)),
            error: state.Error,
            printed: printed.trim(),
          }
        : { status: 'gone', startedAt: '', restarts: 0, error: '', printed: '' };
      return [c.name, seen];
    }),
  );
}

/**
 * After a reset: waits until every container has printed again or Docker has settled on not
 * restarting it (forgotten), or `ms` pass; what Docker says of each then.
 */
async function afterReset(vm: Vm, specs: Spec[], since: number, ms: number): Promise<Map<string, Seen>> {
  await untilOk(vm, 'docker info >/dev/null 2>&1', ms);
  const deadline = Date.now() + ms;
  for (;;) {
    const all = await seenAll(vm, specs, since);
    if ([...all.values()].every((s) => s.printed || forgotten(s)) || Date.now() > deadline) return all;
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
}

async function untilOk(vm: Vm, script: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await vm.run(script)).code !== 0) {
    if (Date.now() > deadline) throw new Error(`${vm.opts.name}: still failing after ${ms / 1000} s: ${script}`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

/** One container's verdict: back on its address (before its command ran), or why not. */
function back(t: Test, c: Spec, s: Seen, why: string): void {
  const want = c.address ? `${c.address}/24` : /^172\.17\.\d+\.\d+\/16$/;
  t.match(
    s.printed,
    want,
    `${c.name} back${c.address ? ` on ${c.address} before its command ran` : ''} (${why}): ${JSON.stringify(s)}`,
  );
}

t.test('a host reset brings its containers back as Docker brings its own', async (t) => {
  const started = Date.now();
  const farm = await startFarm(`pwrb${randomBytes(2).toString('hex')}`, 1, () => true);
  const vm = farm.vms[0]!;
  const all: Spec[] = [...round('a', 0), ...round('b', 1)];
  t.teardown(async () => {
    if (!t.passing()) t.comment(await dumpHost(vm));
    await farm.stop();
  });
  const choice = await accel();
  t.comment(
    `QEMU ${choice.accel.toUpperCase()} (${choice.why}); agent ready ${(await vm.ready(0, 1)).toFixed(1)} s after the kernel`,
  );
  await untilOk(vm, 'docker info >/dev/null 2>&1', 240_000);
  t.comment(`booted, Docker answering ${secs(started)} after the start`);
  await vm.must('bash scripts/build-test-image.sh docker');
  await vm.must(`${PW} pool create lan ${LAN}.0/24 --range ${LAN}.200-${LAN}.220 --no-gateway`);
  // The LAN's pool is a subnet the host routes: Docker takes it named (--subnet).
  const pw = '-d pipewright --ipam-driver pipewright';
  await vm.must(`docker network create ${pw} --ipam-opt pool=lan --subnet ${LAN}.0/24 -o parent=eth0 mvnet`, 240_000);
  await vm.must(
    `docker network create ${pw} --subnet ${BRIDGE_NET}.0/24 --gateway ${BRIDGE_NET}.1 -o bridge=${BRIDGE} brnet`,
    240_000,
  );
  t.comment(`host, Docker, the image and both networks ready ${secs(started)} after the start`);

  // (a) After `sync`: Docker's records and pipewright's are on the disk; everything must come back.
  const a = round('a', 0);
  await runAll(vm, a);
  await untilOk(vm, a.map((c) => `[ -n "$(docker logs ${c.name} 2>&1)" ]`).join(' && '), 120_000);
  const controlBefore = (await vm.must('docker logs a-ctl')).trim();
  await vm.must('sync');
  let resetAt = Date.now();
  let uptime = await vm.reset();
  t.comment(`reset (a): agent ready ${uptime.toFixed(1)} s after the kernel, ${secs(resetAt)} after the reset`);
  let states = await afterReset(vm, a, Math.floor(resetAt / 1000), 180_000);
  t.comment(`reset (a): containers settled ${secs(resetAt)} after the reset`);
  for (const c of a) back(t, c, states.get(c.name)!, 'synced before the reset');
  t.equal(states.get('a-ctl')!.printed, controlBefore, 'the control on its address of before');

  // (b) A reset right after `docker run`: whatever Docker forgets, it forgets for its own too.
  const b = round('b', 1);
  const ranAt = await runAll(vm, b);
  resetAt = Date.now();
  uptime = await vm.reset();
  t.comment(`reset (b): agent ready ${uptime.toFixed(1)} s after the kernel, ${secs(resetAt)} after the reset`);
  states = await afterReset(vm, all, Math.floor(resetAt / 1000), 180_000);
  t.comment(`reset (b): containers settled ${secs(resetAt)} after the reset`);
  for (const c of a) back(t, c, states.get(c.name)!, 'started long before the reset');
  const control = states.get('b-ctl')!;
  if (forgotten(control)) t.comment(`reset (b): Docker forgot its own control b-ctl: ${JSON.stringify(control)}`);
  else back(t, b[2]!, control, 'the control');
  for (const c of b.filter((c) => !isControl(c))) {
    const s = states.get(c.name)!;
    const later = (ranAt.get(c.name)! - ranAt.get('b-ctl')!).toFixed(2);
    if (!forgotten(s)) back(t, c, s, 'Docker kept its start');
    // Created, never started, no error: Docker lost the start it had recorded (no call of
    // pipewright's fails that way). Its own, if the control went too or started before it.
    else if (forgotten(control) || Number(later) > 0)
      t.comment(
        `reset (b): Docker forgot ${c.name} (its run returned ${later} s after the control's): Docker's, not pipewright's: ${JSON.stringify(s)}`,
      );
    else
      t.fail(
        `${c.name} forgotten, though its run returned ${later} s after the control's, which came back: ${JSON.stringify(s)}`,
      );
  }
  const forgot = b.filter((c) => !isControl(c) && forgotten(states.get(c.name)!)).map((c) => c.name);
  // gc leaves a Docker lease younger than a minute (its endpoint may not be there yet).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, resetAt + 65_000 - Date.now())));
  await leavesNothingOf(t, vm, forgot, all);
  // At each boot the daemon waits for dockerd, retrying: its listeners must not pile up (issue 38).
  const log = await vm.must('cat /var/log/pw/daemon.log');
  t.comment(
    `the daemon retried the engine ${log.match(/Docker engine not reachable/g)?.length ?? 0} times in three boots`,
  );
  t.notMatch(log, /MaxListenersExceededWarning/, 'and never warned of an abort-listener leak');
  t.comment(`whole test: ${secs(started)}`);
});

/**
 * What pipewright holds after the daemon's start sweep and `gc`: exactly the containers that run,
 * nothing of those Docker forgot (their lease, record, veth, rules).
 */
async function leavesNothingOf(t: Test, vm: Vm, forgot: string[], all: Spec[]): Promise<void> {
  const gc = await vm.must(`${PW} gc`);
  const running = all.filter((c) => !isControl(c) && !forgot.includes(c.name));
  const leases = JSON.parse(await vm.must(`${PW} lease ls --json`)) as { address: string; owner: string }[];
  t.same(
    leases
      .filter((l) => !l.owner.startsWith('docker-gateway:'))
      .map((l) => l.address)
      .sort(),
    running.map((c) => c.address).sort(),
    `a lease for each running container of pipewright's, no other (gc: ${gc.trim() || 'nothing'}): ${JSON.stringify(leases)}`,
  );
  const records = JSON.parse(await vm.must(`${PW} ls --json`)) as { guest: { kind: string }; addresses: string[] }[];
  t.same(
    records
      .filter((r) => r.guest.kind === 'endpoint')
      .flatMap((r) => r.addresses.map((a) => a.split('/')[0]))
      .sort(),
    running.map((c) => c.address).sort(),
    'a record for each running container, no other',
  );
  const links = (await vm.must(`ip -o link show master ${BRIDGE} | wc -l`)).trim();
  t.equal(
    Number(links),
    running.filter((c) => c.network === 'brnet').length,
    `a link on ${BRIDGE} for each running container on brnet`,
  );
  for (const c of all.filter((c) => forgot.includes(c.name))) {
    const rules = await vm.run(
      `iptables-save | grep -F '${c.address}/' ; nft list ruleset 2>/dev/null | grep -F '${c.address} '`,
    );
    t.equal(rules.output, '', `no rule names ${c.address}`);
  }
}
