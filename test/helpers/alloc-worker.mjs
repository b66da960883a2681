// One allocating process for the concurrency tests: allocates COUNT addresses from POOL through
// the library (dist/) and prints them as JSON. Args: <sqlite:<state-dir>|etcd://h:p> <pool> <count> <owner> [host]
import { Store } from '../../dist/db/store.js';
import { Ipam } from '../../dist/net/ipam/allocator.js';
import { SqliteLeaseBackend } from '../../dist/db/ipam-backend.js';
import { EtcdLeaseBackend } from '../../dist/net/ipam/etcd-backend.js';

const [where, pool, count, owner, host] = process.argv.slice(2);
let store;
if (!where.startsWith('etcd://')) store = Store.open(where.slice('sqlite:'.length));
const backend = store ? new SqliteLeaseBackend(store) : await EtcdLeaseBackend.connect([`http://${where.slice(7)}`]);
const ipam = new Ipam(backend, host);
const got = [];
for (let i = 0; i < Number(count); i++) got.push((await ipam.allocate(pool, owner)).address);
await backend.close();
store?.close();
process.stdout.write(JSON.stringify(got));
