import t from 'tap';
import { Store } from '../../src/db/store.js';
import { SqliteLeaseBackend } from '../../src/db/ipam-backend.js';
import { ipamSuite } from '../helpers/ipam-suite.js';
import { Ipam } from '../../src/net/ipam/allocator.js';
import { ipamDriver } from '../../src/daemon/ipam-driver.js';

ipamSuite(t, async (t) => {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  return new SqliteLeaseBackend(store);
});

t.test(
  "Docker's ReleaseAddress (pool and address only) ends only a lease its driver gave out on this host",
  async (t) => {
    const store = Store.open(t.testdir({}));
    t.teardown(() => store.close());
    const backend = new SqliteLeaseBackend(store);
    const [here, there] = [new Ipam(backend, 'host-a'), new Ipam(backend, 'host-b')];
    const d = ipamDriver(here);
    await here.createPool({ name: 'shared', cidr: '10.64.0.0/24' });
    await here.claim('shared', '10.64.0.5', 'netns:blue/eth0');
    await there.claim('shared', '10.64.0.6', 'docker:02:42:0a:40:00:06');
    await here.claim('shared', '10.64.0.7', 'docker:02:42:0a:40:00:07', true);
    for (const address of ['10.64.0.5', '10.64.0.6', '10.64.0.7'])
      await d.ReleaseAddress({ PoolID: 'shared', Address: address });
    t.same(
      (await here.leases({ pool: 'shared' })).map((l) => [l.address, l.owner]),
      [
        ['10.64.0.5', 'netns:blue/eth0'],
        ['10.64.0.6', 'docker:02:42:0a:40:00:06'],
      ],
      "a CLI guest's lease and another host's stay; the driver's own went",
    );
  },
);
