/**
 * One behaviour suite for every IPAM backend: the same assertions run against SQLite and etcd.
 * `make` returns a fresh, empty backend (and registers its own cleanup).
 */
import type { Test } from 'tap';
import { Ipam } from '../../src/net/ipam/allocator.js';
import type { LeaseBackend } from '../../src/net/ipam/backend.js';

type Make = (t: Test) => Promise<LeaseBackend>;

async function drain(ipam: Ipam, pool: string, owner: string): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    try {
      got.push((await ipam.allocate(pool, owner)).address);
    } catch (err) {
      if (/exhausted/.test((err as Error).message)) return got;
      throw err;
    }
  }
}

export function ipamSuite(t: Test, make: Make): void {
  const ipam = async (t: Test) => new Ipam(await make(t), 'host-a');

  t.test('defaults: gateway is the first host and never handed out, nor network or broadcast', async (t) => {
    const i = await ipam(t);
    const pool = await i.createPool({ name: 'small', cidr: '10.50.0.0/29' });
    t.equal(pool.gateway, '10.50.0.1');
    t.same([pool.rangeStart, pool.rangeEnd], ['10.50.0.1', '10.50.0.6']);
    t.same(await drain(i, 'small', 'o'), ['10.50.0.2', '10.50.0.3', '10.50.0.4', '10.50.0.5', '10.50.0.6']);
    await t.rejects(i.allocate('small', 'o'), /pool small \(10\.50\.0\.0\/29\) is exhausted/);
  });

  t.test('released addresses come back last, oldest release first', async (t) => {
    const i = await ipam(t);
    await i.createPool({ name: 'p', cidr: '10.51.0.0/29' });
    const a = await i.allocate('p', 'x');
    await i.release('p', a.address, a);
    t.equal((await i.allocate('p', 'y')).address, '10.51.0.3', 'a never-used address before the just-released one');
    await drain(i, 'p', 'z');
    await i.release('p', '10.51.0.5', 'anyone');
    await i.release('p', '10.51.0.3', { owner: 'y', host: 'host-a' });
    t.equal((await i.allocate('p', 'w')).address, '10.51.0.5', 'oldest release first');
    t.equal((await i.allocate('p', 'w')).address, '10.51.0.3');
    await t.rejects(i.allocate('p', 'w'), /exhausted/);
  });

  t.test('exclusions, ranges and IPv6', async (t) => {
    const i = await ipam(t);
    await i.createPool({
      name: 'r',
      cidr: '10.52.0.0/24',
      range: '10.52.0.10-10.52.0.20',
      exclude: ['10.52.0.11', '10.52.0.12/30'],
    });
    t.same(await drain(i, 'r', 'o'), [
      '10.52.0.10',
      '10.52.0.16',
      '10.52.0.17',
      '10.52.0.18',
      '10.52.0.19',
      '10.52.0.20',
    ]);
    const v6 = await i.createPool({ name: 'six', cidr: 'fd52::/120', gateway: 'fd52::1' });
    t.equal(v6.family, 6);
    t.equal((await i.allocate('six', 'o')).address, 'fd52::2');
    const big = await i.createPool({ name: 'big6', cidr: 'fd53::/64' });
    t.equal((await i.allocate('big6', 'o')).address, 'fd53::2', 'a /64 pool works without enumerating it');
    t.equal(big.rangeEnd, 'fd53::ffff:ffff:ffff:ffff');
  });

  t.test('overlapping pools and bad definitions are refused', async (t) => {
    const i = await ipam(t);
    await i.createPool({ name: 'a', cidr: '10.53.0.0/16' });
    await t.rejects(i.createPool({ name: 'b', cidr: '10.53.4.0/24' }), /overlaps pool a/);
    await t.rejects(i.createPool({ name: 'a', cidr: '10.54.0.0/24' }), /exists already/);
    await t.rejects(
      i.createPool({ name: 'c', cidr: '10.55.0.0/24', gateway: '10.56.0.1' }),
      /outside the pool's subnet/,
    );
    await t.rejects(
      i.createPool({ name: 'd', cidr: '10.57.0.0/24', range: '10.57.0.0-10.57.0.9' }),
      /network or broadcast/,
    );
    await t.rejects(i.createPool({ name: '../x', cidr: '10.58.0.0/24' }), /pool name/);
    t.same(
      (await i.listPools()).map((p) => p.name),
      ['a'],
    );
  });

  t.test('claims: taken addresses name their holder; same owner again is fine', async (t) => {
    const i = await ipam(t);
    await i.createPool({ name: 'c', cidr: '10.59.0.0/24' });
    await i.claim('c', '10.59.0.2', 'netns:blue/eth0');
    t.equal((await i.claim('c', '10.59.0.2', 'netns:blue/eth0')).owner, 'netns:blue/eth0');
    await t.rejects(
      i.claim('c', '10.59.0.2', 'netns:red/eth0'),
      /10\.59\.0\.2 in pool c is taken by netns:blue\/eth0 on host-a/,
    );
    await t.rejects(i.claim('c', '10.59.0.1', 'x'), /gateway/);
    await t.rejects(i.claim('c', '10.60.0.1', 'x'), /not in pool c/);
    await t.rejects(i.claim('c', '10.59.0.0', 'x'), /network or broadcast/, 'the network address is never leased');
    await t.rejects(i.claim('c', '10.59.0.255', 'x'), /network or broadcast/, 'nor the broadcast address');
    t.equal((await i.allocate('c', 'y')).address, '10.59.0.3', 'the cursor skips a claimed address');
  });

  t.test('owners, listing and pool removal', async (t) => {
    const i = await ipam(t);
    await i.createPool({ name: 'o', cidr: '10.61.0.0/24' });
    await i.allocate('o', 'docker:abc/eth0');
    await i.allocate('o', 'docker:abc/eth0');
    await i.claim('o', '10.61.0.200', 'printer', true);
    t.equal((await i.leases({ pool: 'o' })).length, 3);
    await t.rejects(i.removePool('o'), /still has 3 lease/);
    t.same((await i.releaseOwner('docker:abc/eth0')).map((l) => l.address).sort(), ['10.61.0.2', '10.61.0.3']);
    const [left] = await i.leases();
    t.match(left, { address: '10.61.0.200', owner: 'printer', reserved: true, host: 'host-a' });
    await i.removePool('o', true);
    t.same(await i.listPools(), []);
    t.same(await i.leases(), []);
  });

  t.test(
    'owner names are per host: one host releasing "netns:blue/eth0" leaves the other host\'s lease alone',
    async (t) => {
      const backend = await make(t);
      const [a, b] = [new Ipam(backend, 'host-a'), new Ipam(backend, 'host-b')];
      await a.createPool({ name: 'h', cidr: '10.62.0.0/24' });
      const la = await a.allocate('h', 'netns:blue/eth0');
      const lb = await b.allocate('h', 'netns:blue/eth0');
      t.same(
        (await b.heldBy('netns:blue/eth0')).map((l) => l.address),
        [lb.address],
      );
      t.same(
        (await b.releaseOwner('netns:blue/eth0')).map((l) => l.address),
        [lb.address],
        'host b releases only its own',
      );
      t.same(
        (await a.heldBy('netns:blue/eth0')).map((l) => l.address),
        [la.address],
        "host a's lease is still there",
      );
      await t.rejects(
        b.claim('h', la.address, 'netns:blue/eth0'),
        /taken by netns:blue\/eth0 on host-a/,
        'the same owner name on another host is another owner',
      );
    },
  );

  t.test(
    "a stale release (a rollback's, gc's list) ends only its own lease: the address's next holder keeps it",
    async (t) => {
      const backend = await make(t);
      const [a, b] = [new Ipam(backend, 'host-a'), new Ipam(backend, 'host-b')];
      await a.createPool({ name: 's', cidr: '10.63.0.0/24' });
      const first = await a.claim('s', '10.63.0.9', 'netns:a/eth0');
      t.match(await a.release('s', '10.63.0.9', first), { owner: 'netns:a/eth0' }, 'the holder releases it');
      await a.claim('s', '10.63.0.9', 'netns:b/eth0');
      t.equal(await a.release('s', '10.63.0.9', first), null, "A's late release again: nothing ended");
      t.equal(
        await b.release('s', '10.63.0.9', { owner: 'netns:b/eth0', host: 'host-b' }),
        null,
        'the same owner name on another host: nothing ended',
      );
      t.equal(
        await a.release('s', '10.63.0.9', { owner: /^docker:/, host: 'host-a' }),
        null,
        'an owner pattern that does not match: nothing ended',
      );
      t.match(
        await a.leases({ pool: 's' }),
        [{ address: '10.63.0.9', owner: 'netns:b/eth0', host: 'host-a' }],
        "B's lease survives",
      );
      t.equal((await b.allocate('s', 'x')).address, '10.63.0.2', 'and is not on the free list');
      t.same(await a.releaseOwner('netns:a/eth0'), [], 'A holds nothing any more');
    },
  );

  t.test(
    "the lowest policy (Docker's IPAM driver): the lowest free address, so a released one comes back at once",
    async (t) => {
      const i = await ipam(t);
      await i.createPool({ name: 'low', cidr: '10.63.0.0/29', exclude: ['10.63.0.3'] });
      const lowest = async (owner: string) => (await i.allocate('low', owner, true, 'lowest')).address;
      t.same(
        [await lowest('a'), await lowest('b'), await lowest('c')],
        ['10.63.0.2', '10.63.0.4', '10.63.0.5'],
        'in order, past the gateway and the exclusion',
      );
      await i.release('low', '10.63.0.4', 'anyone');
      t.equal(await lowest('b2'), '10.63.0.4', 'a restarted container gets its address back');
      await i.release('low', '10.63.0.5', 'anyone');
      await i.release('low', '10.63.0.2', 'anyone');
      t.equal(await lowest('d'), '10.63.0.2', 'the lowest of those free, whatever the order they were released in');
      const fresh = [(await i.allocate('low', 'e')).address, (await i.allocate('low', 'f')).address];
      t.same(
        fresh,
        ['10.63.0.5', '10.63.0.6'],
        "the fresh policy beside it: its cursor steps past the lowest policy's leases",
      );
      await t.rejects(i.allocate('low', 'g', true, 'lowest'), /pool low \(10\.63\.0\.0\/29\) is exhausted/);
      t.same((await i.leases({ pool: 'low' })).map((l) => l.address).sort(), [
        '10.63.0.2',
        '10.63.0.4',
        '10.63.0.5',
        '10.63.0.6',
      ]);
    },
  );

  t.test('the lowest policy: allocations at once never share an address (IPv6 too)', async (t) => {
    const i = await ipam(t);
    await i.createPool({ name: 'race', cidr: '10.64.0.0/27' });
    await i.createPool({ name: 'race6', cidr: 'fd64::/64' });
    for (const [pool, first] of [
      ['race', '10.64.0.2'],
      ['race6', 'fd64::2'],
    ]) {
      const got = await Promise.all(
        Array.from({ length: 12 }, (_, n) => i.allocate(pool, `docker:${n}`, true, 'lowest')),
      );
      const addresses = got.map((l) => l.address);
      t.equal(new Set(addresses).size, 12, `${pool}: 12 addresses, each once`);
      t.ok(addresses.includes(first), `${pool}: from the start of the range`);
    }
  });
}
