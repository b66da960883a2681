/**
 * Three hosts (VMs with Debian's stock kernel) on one LAN, one etcd cluster (a member on each),
 * pipewright on each with macvlan guests on the LAN from one shared pool. What a farm of
 * static-address containers needs: no address given twice across hosts, guests of different hosts
 * reaching each other, allocations going on while a member is down and refused in one line when
 * the majority is, and a host reset bringing its --restart=always containers back on their
 * addresses before their commands run, with nothing leaked anywhere.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { dumpHost, etcdCommand, hostAddress, LAN, PIPEWRIGHT, startFarm, storeOf, type Farm } from './farm.js';
import type { Vm } from './vm.js';

const HOSTS = 3;
const PER_HOST = 20;
const STORE = storeOf(HOSTS);
// TCG guests, three on two host cores: etcd calls get 30 s (PIPEWRIGHT_ETCD_TIMEOUT_MS).
const PW = `PIPEWRIGHT_STORE=${STORE} PIPEWRIGHT_ETCD_TIMEOUT_MS=30000 ${PIPEWRIGHT}`;
const DOCKER_HOST = 1;
const CONTAINERS = [`${LAN}.210`, `${LAN}.211`];

const secs = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** `g<j> <exit> <address>` per guest, as the attach script prints them. */
function parseAttaches(out: string): { guest: string; code: number; address: string }[] {
  return [...out.matchAll(/^(g\d+) (\d+) (\S*)$/gm)].map((m) => ({ guest: m[1]!, code: Number(m[2]), address: m[3]! }));
}

/** Attaches guests g<from>..g<to-1> (new netns) all at once, each a macvlan of eth0 from pool farm. */
const attachScript = (from: number, to: number) => `
for j in $(seq ${from} ${to - 1}); do ip netns add g$j; done
for j in $(seq ${from} ${to - 1}); do (${PW} attach eth0 netns:g$j pool:farm >/tmp/a$j.out 2>&1; echo $? >/tmp/a$j.rc) & done
wait
for j in $(seq ${from} ${to - 1}); do echo "g$j $(cat /tmp/a$j.rc) $(ip -n g$j -4 -o address show eth0 2>/dev/null | awk '{print $4}')"; cat /tmp/a$j.out; done`;

const leaseCount = async (vm: Vm) => JSON.parse(await vm.must(`${PW} lease ls --pool farm --json`)).length as number;
// A host's records are its own (its state dir), read without etcd: with the majority gone too.
const recordCount = async (vm: Vm) =>
  JSON.parse(await vm.must(`PIPEWRIGHT_STORE= ${PIPEWRIGHT} ls --json`)).length as number;

async function untilOk(vm: Vm, script: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await vm.run(script);
    if (r.code === 0) return;
    if (Date.now() > deadline)
      throw new Error(`${vm.opts.name}: still failing after ${ms / 1000} s: ${script}\n${r.output}`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

t.test('a three-host farm on one etcd cluster', async (t) => {
  const started = Date.now();
  const farm: Farm = await startFarm(`pwfarm${randomBytes(2).toString('hex')}`, HOSTS, (i) => i === DOCKER_HOST);
  t.teardown(async () => {
    if (!t.passing()) await dumpLogs(t, farm);
    await farm.stop();
  });
  const [h0, h1, h2] = farm.vms as [Vm, Vm, Vm];
  await untilOk(h0, `${PW} pool ls --json`, 180_000);
  t.comment(`three VMs booted, etcd cluster and daemons up in ${secs(started)}`);
  await h0.must(`${PW} pool create farm ${LAN}.0/24 --range ${LAN}.100-${LAN}.220 --no-gateway`);

  const attached = Date.now();
  const outs = await Promise.all(farm.vms.map((vm) => vm.must(attachScript(0, PER_HOST), 1_500_000)));
  const results = outs.flatMap(parseAttaches);
  t.comment(`${results.length} concurrent attaches on ${HOSTS} hosts took ${secs(attached)}`);
  t.equal(results.length, HOSTS * PER_HOST);
  t.same(
    results.filter((r) => r.code !== 0),
    [],
    `every attach succeeded:\n${outs.join('\n')}`,
  );
  const addresses = results.map((r) => r.address);
  t.equal(new Set(addresses).size, HOSTS * PER_HOST, '60 distinct addresses across the hosts');
  t.ok(
    addresses.every((a) => a.startsWith(`${LAN}.`) && a.endsWith('/24')),
    'all from the shared pool',
  );
  t.equal(await leaseCount(h0), HOSTS * PER_HOST, 'etcd holds one lease per guest');

  const addressOf = (host: number, guest: string) =>
    results[host * PER_HOST + Number(guest.slice(1))]!.address.split('/')[0]!;
  t.equal(
    (await h0.run(`ip netns exec g0 ping -c 2 -W 3 ${addressOf(1, 'g0')}`)).code,
    0,
    'a guest of host 0 reaches one of host 1',
  );
  t.equal(
    (await h2.run(`ip netns exec g5 ping -c 2 -W 3 ${addressOf(0, 'g7')}`)).code,
    0,
    'a guest of host 2 reaches one of host 0',
  );

  await h2.must('pkill -9 -x etcd');
  const oneDown = parseAttaches(await h0.must(attachScript(PER_HOST, PER_HOST + 1), 300_000));
  t.equal(oneDown[0]?.code, 0, `one etcd member down: allocation goes on\n${JSON.stringify(oneDown)}`);
  t.notOk(addresses.includes(oneDown[0]!.address), 'and gives an address not yet given');

  await h1.must('pkill -9 -x etcd');
  const refusedAt = Date.now();
  const noQuorum = await h0.run(
    `ip netns add gx; ${PW.replace('TIMEOUT_MS=30000', 'TIMEOUT_MS=10000')} attach eth0 netns:gx pool:farm`,
    300_000,
  );
  t.comment(`with two members of three down, attach answered in ${secs(refusedAt)}`);
  t.equal(noQuorum.code, 1, 'the majority gone: attach fails');
  t.match(noQuorum.output.trim(), /^pipewright: .*etcd/, 'naming etcd');
  t.equal(noQuorum.output.trim().split('\n').length, 1, 'in one line');
  t.equal((await h0.run('ip -n gx link show eth0')).code, 1, 'no interface made');
  t.equal(await recordCount(h0), PER_HOST + 1, 'nothing recorded');
  await h0.must('ip netns del gx'); // nothing was attached to it: nothing for the cleanup to detach

  const cluster = Array.from({ length: HOSTS }, (_, j) => `h${j}=http://${hostAddress(j)}:2380`).join(',');
  await Promise.all([1, 2].map((i) => farm.vms[i]!.must(`${etcdCommand(i, cluster)} >>/var/log/pw/etcd.log 2>&1 &`)));
  await untilOk(h0, `${PW} lease ls --json >/dev/null`, 180_000);
  t.equal(await leaseCount(h0), HOSTS * PER_HOST + 1, 'the members back: the leases are all there, no more');

  await hostReset(t, h1);
  await leavesNothing(t, farm);
});

/** Containers on a pipewright network of host h, --restart=always; the host reset; they come back on their addresses. */
async function hostReset(t: Test, h: Vm): Promise<void> {
  await untilOk(h, 'docker info >/dev/null 2>&1', 180_000);
  await h.must('bash scripts/build-test-image.sh docker');
  // The pool is the LAN's, which the host routes: Docker takes it named (--subnet).
  await h.must(
    `docker network create -d pipewright --ipam-driver pipewright --ipam-opt pool=farm --subnet ${LAN}.0/24 -o parent=eth0 farmnet`,
    240_000,
  );
  // Each prints the address eth0 holds when its command starts, at every start.
  // (\$4: the agent's bash reads the double-quoted command first, and must leave awk its $4.)
  const show = `ip -4 -o address show eth0 | awk '{print \\$4}'; exec sleep 100000`;
  for (const [k, address] of CONTAINERS.entries()) {
    await h.must(
      `docker run -d --restart=always --network farmnet --ip ${address} --name web${k} pipewright-test/busybox:latest sh -c "${show}"`,
    );
  }
  const before = await Promise.all(CONTAINERS.map((_, k) => h.must(`docker logs web${k}`)));
  t.same(
    before.map((l) => l.trim()),
    CONTAINERS.map((a) => `${a}/24`),
    'each container found its address at start',
  );
  // A reset after the host has written its state (test/vm/reboot.suite.ts resets right after
  // `docker run` too, beside a control): dockerd renames a container's state file into place
  // without syncing its directory, and a power cut before the kernel writes it back loses that
  // start, so Docker leaves the container Created. Every container must come back here.
  await h.must('sync');
  const resetAt = Date.now();
  const uptime = await h.reset();
  t.comment(
    `host ${h.opts.name} reset: its agent was ready ${uptime.toFixed(1)} s after the kernel started, ${secs(resetAt)} after the reset`,
  );
  // What each printed since the reset (the guest's clock is the host's: QEMU's RTC). A reset is a
  // power cut: the first start's line, in the guest's page cache then, may be gone with it.
  const since = Math.floor(resetAt / 1000);
  const web = CONTAINERS.map((_, k) => `web${k}`).join(' ');
  const shown = `docker ps -a --format '{{.Names}} {{.Status}}'; for c in ${web}; do docker logs -t $c 2>&1; done`;
  await untilOk(
    h,
    `${shown}; for c in ${web}; do [ -n "$(docker logs --since ${since} $c)" ] || exit 1; done`,
    300_000,
  );
  t.comment(`its containers were running again ${secs(resetAt)} after the reset`);
  for (const [k, address] of CONTAINERS.entries()) {
    t.equal(
      (await h.must(`docker logs --since ${since} web${k}`)).trim(),
      `${address}/24`,
      `web${k} had ${address} before its command ran, again`,
    );
  }
  // The reset took the host's 20 netns guests (/run is a tmpfs): its daemon undid them at its start.
  await untilOk(h, `[ "$(${PW} ls --json | grep -c '"guest":')" = ${CONTAINERS.length} ]`, 180_000);
  const records = JSON.parse(await h.must(`${PW} ls --json`)) as { state: string; guest: { kind: string } }[];
  t.same(
    records.map((r) => [r.guest.kind, r.state]),
    CONTAINERS.map(() => ['endpoint', 'ready']),
    'the store holds one endpoint per container, ready, and none of the guests the reset took',
  );
  t.equal(
    Number((await h.must(`grep -c ' undid g[0-9]* eth0: guest no longer exists$' /var/log/pw/daemon.log`)).trim()),
    PER_HOST,
    'its daemon said so, once per guest',
  );
  const leases = JSON.parse(await h.must(`${PW} lease ls --pool farm --json`)) as { owner: string }[];
  t.equal(
    leases.filter((l) => l.owner.startsWith('netns:')).length,
    HOSTS * PER_HOST + 1 - PER_HOST,
    "their leases are back in the shared pool, the other hosts' guests keep theirs",
  );
}

/** A failed run's evidence, before the VMs go: each host's. */
async function dumpLogs(t: Test, farm: Farm): Promise<void> {
  for (const vm of farm.vms) t.comment(await dumpHost(vm));
}

/** Everything taken down: no lease in etcd, no record on any host, no link in any guest. */
async function leavesNothing(t: Test, farm: Farm): Promise<void> {
  const h = farm.vms[DOCKER_HOST]!;
  await h.must(`docker rm -f ${CONTAINERS.map((_, k) => `web${k}`).join(' ')} && docker network rm farmnet`);
  await Promise.all(
    farm.vms.map((vm) =>
      vm.must(`for ns in $(ip netns list | awk '{print $1}'); do ${PW} detach netns:$ns || exit 1; done`, 900_000),
    ),
  );
  const h0 = farm.vms[0]!;
  t.equal(await leaseCount(h0), 0, 'no lease left in etcd');
  for (const vm of farm.vms) {
    t.equal(await recordCount(vm), 0, `${vm.opts.name}: no record left`);
    t.equal(
      (
        await vm.must(
          `for ns in $(ip netns list | awk '{print $1}'); do ip -n $ns -o link show | grep -v ': lo:'; done; true`,
        )
      ).trim(),
      '',
      `${vm.opts.name}: no link left in a guest`,
    );
    t.equal((await vm.must(`ip -o link show type macvlan`)).trim(), '', `${vm.opts.name}: no macvlan left on the host`);
  }
}
