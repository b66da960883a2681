#!/usr/bin/env node
// IPAM benchmark: allocations per second through the library (SQLite, etcd), through the CLI
// (`pipewright lease reserve <pool> --owner ...`, one process each), and the CNI host-local plugin
// (one ADD per allocation) on the same range, same machine, same run.
// Usage: node bench/ipam.mjs [N]   (after `npm run build`; etcd must be installed)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Store } from '../dist/db/store.js';
import { Ipam } from '../dist/net/ipam/allocator.js';
import { SqliteLeaseBackend } from '../dist/db/ipam-backend.js';
import { EtcdLeaseBackend } from '../dist/net/ipam/etcd-backend.js';

const N = Number(process.argv[2] ?? 2000);
const CLI_N = Math.min(N, 100);
const CLI = new URL('../dist/bin/pipewright', import.meta.url).pathname;
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS; // rare on hosts; adds ~90 ms to each Node start on the reference VM
const tmp = mkdtempSync(join(tmpdir(), 'pwbench-ipam-'));
const rate = (n, ms) => (n / ms) * 1000;

async function library(backend) {
  const ipam = new Ipam(backend);
  await ipam.createPool({ name: 'bench', cidr: '10.248.0.0/16' });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await ipam.allocate('bench', 'bench');
  return rate(N, performance.now() - t0);
}

function timedRuns(n, run) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) run(i);
  return rate(n, performance.now() - t0);
}

const etcdDir = join(tmp, 'etcd');
const etcd = spawn(
  'etcd',
  [
    '--data-dir',
    etcdDir,
    '--listen-client-urls',
    'http://127.0.0.1:23790',
    '--advertise-client-urls',
    'http://127.0.0.1:23790',
    '--listen-peer-urls',
    'http://127.0.0.1:23800',
    '--initial-advertise-peer-urls',
    'http://127.0.0.1:23800',
    '--initial-cluster',
    'default=http://127.0.0.1:23800',
    '--log-level',
    'error',
  ],
  { stdio: 'ignore' },
);
try {
  const store = Store.open(join(tmp, 'lib'));
  const sqlite = await library(new SqliteLeaseBackend(store));
  store.close();
  await new Promise((r) => setTimeout(r, 1500));
  const etcdBackend = await EtcdLeaseBackend.connect(['http://127.0.0.1:23790']);
  const etcdRate = await library(etcdBackend);
  await etcdBackend.close();

  const cliDir = join(tmp, 'cli');
  spawnSync(CLI, ['--state-dir', cliDir, 'pool', 'create', 'bench', '10.249.0.0/16'], { env });
  const cli = timedRuns(CLI_N, () => {
    const r = spawnSync(CLI, ['--state-dir', cliDir, 'lease', 'reserve', 'bench', '--owner', 'bench'], { env });
    if (r.status !== 0) throw new Error(String(r.stderr));
  });
  const conf = JSON.stringify({
    cniVersion: '0.4.0',
    name: 'bench',
    type: 'bridge',
    ipam: { type: 'host-local', subnet: '10.250.0.0/16', dataDir: join(tmp, 'cni') },
  });
  const hostLocal = timedRuns(CLI_N, (i) => {
    const r = spawnSync('/usr/lib/cni/host-local', [], {
      input: conf,
      env: {
        ...env,
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: `b${i}`,
        CNI_NETNS: '/proc/self/ns/net',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
      },
    });
    if (r.status !== 0) throw new Error(String(r.stdout));
  });
  const row = (name, r) =>
    console.log(
      `${name.padEnd(36)} ${r.toFixed(0).padStart(8)}/s  ${(r / hostLocal).toFixed(1).padStart(7)}x host-local`,
    );
  console.log(`allocations (library N=${N}, processes N=${CLI_N})`);
  row('pipewright library, SQLite', sqlite);
  row('pipewright library, etcd', etcdRate);
  row('pipewright CLI (lease reserve)', cli);
  row('CNI host-local (one ADD each)', hostLocal);
} finally {
  etcd.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
