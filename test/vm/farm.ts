/**
 * A farm of test VMs on one virtual LAN: a bridge and one tap per VM in a network namespace of the
 * farm's own (nothing of the host's network is touched), each VM with a raw disk of its own for
 * /var/lib (kept across a reset) and a boot script there that starts its services on every boot:
 * its address on the LAN, its member of a three-member etcd cluster, pipewright's daemon on that
 * cluster, and dockerd when asked.
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Vm } from './vm.js';

export const LAN = '10.77.0';
/** This checkout's CLI: the guests see the host's root, so the same path. */
export const PIPEWRIGHT = fileURLToPath(new URL('../../dist/bin/pipewright', import.meta.url));
export const hostAddress = (i: number) => `${LAN}.${i + 1}`;
const ENDPOINTS = (n: number) => Array.from({ length: n }, (_, i) => `${hostAddress(i)}:2379`).join(',');
/** Plain http to etcd on the farm's LAN (a test LAN; a production farm gives etcd TLS). */
export const storeOf = (n: number) => `etcd+http://${ENDPOINTS(n)}`;

export interface Farm {
  vms: Vm[];
  /** Stops the VMs and removes the LAN and the disks. */
  stop(): Promise<void>;
}

async function ip(ns: string, args: string[]): Promise<void> {
  await execa('ip', ['-n', ns, ...args]);
}

/** The farm's LAN: netns `ns` with bridge "lan" and taps t0..t<n-1> on it. */
async function makeLan(ns: string, n: number): Promise<void> {
  await execa('ip', ['netns', 'add', ns]);
  await ip(ns, ['link', 'add', 'lan', 'type', 'bridge']);
  await ip(ns, ['link', 'set', 'lan', 'up']);
  for (let i = 0; i < n; i++) {
    await ip(ns, ['tuntap', 'add', `t${i}`, 'mode', 'tap']);
    await ip(ns, ['link', 'set', `t${i}`, 'master', 'lan', 'up']);
  }
}

async function makeDisk(path: string): Promise<void> {
  await execa('truncate', ['-s', '3G', path]);
  await execa('mkfs.ext4', ['-q', '-F', path]);
}

/** What VM `i` starts at each boot, in the order a host's services start. */
export function bootScript(i: number, n: number, docker: boolean): string {
  const me = hostAddress(i);
  const cluster = Array.from({ length: n }, (_, j) => `h${j}=http://${hostAddress(j)}:2380`).join(',');
  return `#!/bin/bash
# pipewright farm host ${i}: written by test/vm/farm.ts, run by stage 2 at each boot.
ip address add ${me}/24 dev eth0
ip link set eth0 up
mkdir -p /var/log/pw
${etcdCommand(i, cluster)} >>/var/log/pw/etcd.log 2>&1 &
PIPEWRIGHT_STORE=${storeOf(n)} PIPEWRIGHT_ETCD_TIMEOUT_MS=30000 setsid ${PIPEWRIGHT} daemon >>/var/log/pw/daemon.log 2>&1 &
for _ in $(seq 100); do [ -S /run/docker/plugins/pipewright.sock ] && break; sleep 0.2; done
${docker ? DOCKER_SERVICES : ''}
exit 0
`;
}

/**
 * containerd, then dockerd on it, each started again 2 s after it exits, as systemd's units on a
 * Debian host do (Restart=always). Under TCG, a dockerd that starts its own containerd gives up
 * when containerd is not up within its 15 s, and exits (seen in the farm: no Docker after a boot).
 */
const DOCKER_SERVICES = `setsid bash -c 'while :; do containerd; sleep 2; done' >>/var/log/pw/containerd.log 2>&1 &
for _ in $(seq 300); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
setsid bash -c 'while :; do dockerd --debug --data-root /var/lib/docker --containerd /run/containerd/containerd.sock; sleep 2; done' >>/var/log/pw/dockerd.log 2>&1 &`;

/** Member h<i> of the cluster; timings loose enough for a TCG guest. */
export function etcdCommand(i: number, cluster: string): string {
  const me = hostAddress(i);
  return [
    'setsid etcd',
    `--name h${i} --data-dir /var/lib/etcd/data`,
    `--listen-peer-urls http://${me}:2380 --initial-advertise-peer-urls http://${me}:2380`,
    `--listen-client-urls http://${me}:2379,http://127.0.0.1:2379 --advertise-client-urls http://${me}:2379`,
    `--initial-cluster ${cluster} --initial-cluster-state new --initial-cluster-token pw-farm`,
    '--heartbeat-interval 300 --election-timeout 3000',
  ].join(' ');
}

/** Boots `n` VMs on one LAN; each runs its boot script once booted (and at every boot after). */
export async function startFarm(name: string, n: number, dockerOn: (i: number) => boolean): Promise<Farm> {
  const dir = mkdtempSync(`/tmp/pw-farm-${name}-`);
  const ns = name;
  const vms: Vm[] = [];
  const stop = async () => {
    await Promise.all(vms.map((vm) => vm.kill()));
    await execa('ip', ['netns', 'del', ns], { reject: false });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await makeLan(ns, n);
    const disks = Array.from({ length: n }, (_, i) => join(dir, `h${i}.img`));
    await Promise.all(disks.map(makeDisk));
    const booted = await Promise.all(
      disks.map((disk, i) =>
        Vm.boot(
          {
            name: `${name}-h${i}`,
            disk,
            netns: ns,
            nic: { tap: `t${i}`, mac: `52:54:00:77:00:${(i + 1).toString(16).padStart(2, '0')}` },
          },
          300_000,
        ),
      ),
    );
    vms.push(...booted);
    await Promise.all(
      vms.map((vm, i) =>
        vm.must(
          `cat >/var/lib/pw-vm/boot.sh <<'BOOT'\n${bootScript(i, n, dockerOn(i))}BOOT\nchmod +x /var/lib/pw-vm/boot.sh && /var/lib/pw-vm/boot.sh`,
        ),
      ),
    );
    return { vms, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A failed run's evidence from one host, before its VM goes: what Docker says of each container
 * (a start it forgot shows as created, StartedAt 0001-01-01), dockerd's restore lines, the calls
 * pipewright's daemon is still answering, the service logs and the processes.
 */
const DUMP = `cd /var/log/pw
echo "== docker inspect (status, started, restarts, error)"
for c in $(timeout 20 docker ps -aq); do
  timeout 20 docker inspect --format '{{.Name}} {{.State.Status}} started={{.State.StartedAt}} restarts={{.RestartCount}} error={{.State.Error}}' $c
done
echo "== pipewright's calls in flight"
timeout 20 curl -sS -X POST --unix-socket /run/docker/plugins/pipewright.sock http://plugin/Pipewright.Calls; echo
echo "== dockerd.log (restore)"
grep -iE 'restor|loaded container|restart|sandbox|clean' dockerd.log | tail -n 60
echo "== dockerd.log (plugin calls, errors)"; grep -iE 'plugin|ipam|pipewright|level=(error|warn|fatal)' dockerd.log | tail -n 60
for f in etcd.log daemon.log; do echo "== $f"; tail -n 40 $f; done
echo "== dockerd.log, containerd.log (last lines)"; tail -n 15 dockerd.log containerd.log
echo "== ps"; ps -eo pid,etime,args | grep -v ' \\[' | tail -n 60`;

export async function dumpHost(vm: Vm): Promise<string> {
  const r = await vm.run(DUMP, 120_000).catch((e: Error) => ({ output: e.message }));
  return `${vm.opts.name}:\n${r.output}`;
}
