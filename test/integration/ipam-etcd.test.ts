import t from 'tap';
import { EtcdLeaseBackend } from '../../src/ipam/etcd-backend.js';
import { ipamSuite } from '../helpers/ipam-suite.js';
import { startEtcd } from '../helpers/etcd.js';

const endpoint = await startEtcd(t);
ipamSuite(t, async (t) => {
  // One etcd for the file; each test gets its own key space by clearing what the last one left.
  const backend = await EtcdLeaseBackend.connect([`http://${endpoint}`]);
  for (const p of await backend.listPools()) await backend.removePool(p.name);
  t.teardown(() => backend.close());
  return backend;
});
