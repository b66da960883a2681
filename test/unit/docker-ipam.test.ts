/**
 * The IPAM driver's handlers on a real (SQLite) store, called as dockerd calls them, replays
 * included: Docker repeats requests after its own restart, and each must get the same answer.
 */
import t, { type Test } from 'tap';
import { Store } from '../../src/db/store.js';
import { SqliteLeaseBackend } from '../../src/db/ipam-backend.js';
import { Ipam } from '../../src/net/ipam/allocator.js';
import { ipamDriver } from '../../src/daemon/ipam-driver.js';

const MAC = 'com.docker.network.endpoint.macaddress';
const GATEWAY = { RequestAddressType: 'com.docker.network.gateway' };

function driver(t: Test) {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  const ipam = new Ipam(new SqliteLeaseBackend(store), 'host-a');
  return { ipam, d: ipamDriver(ipam) };
}

t.test('a pool from --subnet and --ip-range: the range is the sub-pool, a replay gets the same pool', async (t) => {
  const { ipam, d } = driver(t);
  const req = { AddressSpace: 'pipewright', Pool: '10.30.0.0/24', SubPool: '10.30.0.128/25', Options: {} };
  const first = await d.RequestPool(req);
  t.same(await d.RequestPool(req), first, 'the same request, the same answer');
  const pool = await ipam.pool((first as { PoolID: string }).PoolID);
  t.same(
    [pool.rangeStart, pool.rangeEnd, pool.gateway],
    ['10.30.0.128', '10.30.0.254', null],
    "the range stops before the subnet's broadcast",
  );
  const gw = await d.RequestAddress({ PoolID: pool.name, Address: '10.30.0.1', Options: GATEWAY });
  t.same(gw, { Address: '10.30.0.1/24', Data: {} }, 'the gateway Docker asked for');
  const a = await d.RequestAddress({ PoolID: pool.name, Address: '', Options: { [MAC]: '02:42:0a:1e:00:02' } });
  t.match(a, { Address: '10.30.0.128/24' }, 'from the range');
  t.same(
    await d.RequestAddress({ PoolID: pool.name, Address: '', Options: { [MAC]: '02:42:0a:1e:00:02' } }),
    a,
    'a replay gets the same address',
  );
  await t.rejects(
    Promise.resolve(
      d.RequestAddress({ PoolID: pool.name, Address: '10.30.0.128', Options: { [MAC]: '02:42:0a:1e:00:03' } }),
    ),
    /10\.30\.0\.128 in pool \S+ is taken by docker:02:42:0a:1e:00:02/,
    'a requested address is that address or an error',
  );
  t.same(await d.ReleasePool({ PoolID: pool.name }), {}, 'a pool with leases stays');
  t.equal((await ipam.listPools()).length, 1);
  for (const address of ['10.30.0.1', '10.30.0.128']) await d.ReleaseAddress({ PoolID: pool.name, Address: address });
  await d.ReleasePool({ PoolID: pool.name });
  t.same(await ipam.listPools(), [], 'released once empty');
  t.same(await d.ReleasePool({ PoolID: pool.name }), {}, 'and a replayed release is fine');
});

t.test("an operator's pool: its own gateway, never removed; no subnet and no pool is an error", async (t) => {
  const { ipam, d } = driver(t);
  await ipam.createPool({ name: 'lan', cidr: '10.31.0.0/24' });
  const res = (await d.RequestPool({ AddressSpace: 'pipewright', Pool: '', Options: { pool: 'lan' } })) as {
    PoolID: string;
  };
  t.same(res, { PoolID: 'lan', Pool: '10.31.0.0/24', Data: {} });
  t.same(await d.RequestAddress({ PoolID: 'lan', Address: '', Options: GATEWAY }), {
    Address: '10.31.0.1/24',
    Data: {},
  });
  await t.rejects(
    Promise.resolve(d.RequestPool({ Pool: '10.99.0.0/24', Options: { pool: 'lan' } })),
    /pool lan is 10\.31\.0\.0\/24, not 10\.99\.0\.0\/24/,
  );
  await d.ReleasePool({ PoolID: 'lan' });
  t.equal((await ipam.listPools()).length, 1, 'kept');
  await t.rejects(
    Promise.resolve(d.RequestPool({ AddressSpace: 'pipewright', Pool: '' })),
    /give the network a --subnet/,
  );
});
