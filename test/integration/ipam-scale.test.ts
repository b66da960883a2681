/**
 * Real processes, real contention: 16 processes x 200 allocations from one pool get 3200 distinct
 * addresses (SQLite; and etcd with the processes split between two "hosts"). A /16 pool hands out
 * all 65,534 addresses, then says it is exhausted, without slowing down as leases pile up.
 */
import t from 'tap';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Store } from '../../src/db/store.js';
import { Ipam } from '../../src/net/ipam/allocator.js';
import { SqliteLeaseBackend } from '../../src/db/ipam-backend.js';
import { EtcdLeaseBackend } from '../../src/net/ipam/etcd-backend.js';
import { startEtcd } from '../helpers/etcd.js';

const WORKER = fileURLToPath(new URL('../helpers/alloc-worker.mjs', import.meta.url));
const PROCS = 16;
const EACH = 200;

async function race(where: (i: number) => string, pool: string, host: (i: number) => string): Promise<string[]> {
  const runs = Array.from({ length: PROCS }, (_, i) =>
    execa('node', [WORKER, where(i), pool, String(EACH), `worker-${i}`, host(i)], { reject: false }),
  );
  const results = await Promise.all(runs);
  for (const r of results) if (r.exitCode !== 0) throw new Error(r.stderr);
  return results.flatMap((r) => JSON.parse(r.stdout) as string[]);
}

t.test('16 processes x 200 allocations, SQLite', async (t) => {
  const dir = t.testdir({});
  const store = Store.open(dir);
  t.teardown(() => store.close());
  const ipam = new Ipam(new SqliteLeaseBackend(store));
  await ipam.createPool({ name: 'race', cidr: '10.244.0.0/20' });
  const got = await race(
    () => `sqlite:${dir}`,
    'race',
    () => 'h1',
  );
  t.equal(got.length, PROCS * EACH);
  t.equal(new Set(got).size, PROCS * EACH, 'no duplicate');
  t.equal((await ipam.leases({ pool: 'race' })).length, PROCS * EACH, 'every one is a lease in the store');
});

t.test('16 processes x 200 allocations, etcd, two hosts', async (t) => {
  const endpoint = await startEtcd(t);
  const backend = await EtcdLeaseBackend.connect([`http://${endpoint}`], {});
  t.teardown(() => backend.close());
  const ipam = new Ipam(backend);
  await ipam.createPool({ name: 'race', cidr: '10.245.0.0/20' });
  const got = await race(
    () => `etcd://${endpoint}`,
    'race',
    (i) => (i % 2 ? 'host-b' : 'host-a'),
  );
  t.equal(new Set(got).size, PROCS * EACH, 'no duplicate');
  const leases = await backend.leases({ pool: 'race' });
  t.equal(leases.length, PROCS * EACH);
  t.same([...new Set(leases.map((l) => l.host))].sort(), ['host-a', 'host-b']);
});

t.test('a /16 pool: all 65,534 addresses, then exhausted; no slow-down', async (t) => {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  const ipam = new Ipam(new SqliteLeaseBackend(store));
  await ipam.createPool({ name: 'big', cidr: '10.246.0.0/16', noGateway: true });
  const perBlock: number[] = [];
  const seen = new Set<string>();
  for (let block = 0; block < 65534 / 1000; block++) {
    const n = Math.min(1000, 65534 - block * 1000);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) seen.add((await ipam.allocate('big', 'o')).address);
    perBlock.push((performance.now() - t0) / n);
  }
  t.equal(seen.size, 65534, 'every usable address, once');
  t.ok(!seen.has('10.246.0.0') && !seen.has('10.246.255.255'), 'never network or broadcast');
  await t.rejects(ipam.allocate('big', 'o'), /pool big \(10\.246\.0\.0\/16\) is exhausted/);
  const early = perBlock.slice(1, 6).reduce((a, b) => a + b) / 5;
  const late = perBlock.slice(-6, -1).reduce((a, b) => a + b) / 5;
  t.comment(`ms per allocation: first blocks ${early.toFixed(3)}, last blocks ${late.toFixed(3)}`);
  t.ok(
    late < early * 2,
    `time per allocation does not grow with the leases (${early.toFixed(3)} -> ${late.toFixed(3)} ms)`,
  );
});
