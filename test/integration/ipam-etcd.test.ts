import t from 'tap';
import { EtcdLeaseBackend } from '../../src/ipam/etcd-backend.js';
import { ipamSuite } from '../helpers/ipam-suite.js';
import { startEtcd, startEtcdProcess } from '../helpers/etcd.js';
import { cli, stateDir } from '../helpers/host.js';

const endpoint = await startEtcd(t);
ipamSuite(t, async (t) => {
  // One etcd for the file; each test gets its own key space by clearing what the last one left.
  const backend = await EtcdLeaseBackend.connect([`http://${endpoint}`]);
  for (const p of await backend.listPools()) await backend.removePool(p.name);
  t.teardown(() => backend.close());
  return backend;
});

t.test('a stalled etcd fails a call with an error within its deadline, never hangs it', async (t) => {
  const etcd = await startEtcdProcess(t);
  const dir = stateDir(t);
  const pw = (...args: string[]) => cli(dir, ['--store', `etcd://${etcd.endpoint}`, ...args]);
  t.equal((await pw('pool', 'create', 'st', '10.252.0.0/24')).exitCode, 0);
  process.kill(etcd.pid, 'SIGSTOP');
  t.teardown(() => process.kill(etcd.pid, 'SIGCONT'));
  const t0 = Date.now();
  const r = await pw('lease', 'reserve', 'st', '--owner', 'x');
  const took = Date.now() - t0;
  process.kill(etcd.pid, 'SIGCONT');
  t.equal(r.exitCode, 1);
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
  t.ok(took < 20_000, `gave up after ${took} ms`);
  t.equal((await pw('lease', 'reserve', 'st', '--owner', 'x')).exitCode, 0, 'and works again once etcd answers');
});
