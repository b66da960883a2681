import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import Database from 'better-sqlite3';
import { Store } from '../../src/db/store.js';
import { MIGRATIONS, rebuildAttachments } from '../../src/db/migrations.js';
import { insertPending, findAttachment, markReady, countOnHostIf, ownerAlive } from '../../src/db/attachments.js';
import { checkAttachSpec, sameSpec } from '../../src/model/attachment.js';

t.test('a new store is migrated to the current schema and round-trips a record', async (t) => {
  const dir = t.testdir({});
  const store = Store.open(dir);
  t.teardown(() => store.close());
  t.equal(store.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  const id = insertPending(store, {
    guestKind: 'netns',
    guestId: 'blue',
    guestName: 'blue',
    netnsPath: '/run/netns/blue',
    ifname: 'eth0',
    kind: 'veth',
    hostIf: 'br0',
    hostLink: 'pw00000000',
    mac: '02:00:00:00:00:01',
    mtu: 1500,
    netnsId: null,
    spec: checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'] }),
  });
  markReady(store, id, null);
  const rec = findAttachment(store, 'netns', 'blue', 'eth0');
  t.equal(rec?.state, 'ready');
  t.same(rec?.spec.addresses, ['10.0.0.2/24']);
  t.equal(countOnHostIf(store, 'br0'), 1);
  t.throws(
    () => insertPending(store, { ...rec!, hostLink: 'pw00000001' }),
    /^another pipewright process is attaching eth0 of blue right now; nothing changed/,
    'one record per guest interface: the loser of a race is told so',
  );
});

t.test('a corrupt store is an error, never a silent reset', async (t) => {
  const dir = t.testdir({});
  writeFileSync(join(dir, 'pipewright.db'), 'this is not a database, it is text '.repeat(200));
  t.throws(() => Store.open(dir), /cannot open the store .*pipewright\.db/);
});

t.test('a store from a newer pipewright is refused', async (t) => {
  const dir = t.testdir({});
  const db = new Database(join(dir, 'pipewright.db'));
  db.pragma(`user_version = ${MIGRATIONS.length + 5}`);
  db.close();
  t.throws(() => Store.open(dir), /newer than this pipewright knows/);
});

t.test('records of the older spec shape (kind inside, no hostLink) compare equal after migration', async (t) => {
  const dir = t.testdir({});
  const db = new Database(join(dir, 'pipewright.db'));
  db.exec(MIGRATIONS.slice(0, 4).join('\n'));
  db.pragma('user_version = 4');
  const old = {
    kind: 'macvlan',
    hostIf: 'eth1',
    ifname: 'eth0',
    mac: null,
    mtu: null,
    macvlanMode: 'bridge',
    addresses: ['10.0.0.2/24'],
    routes: [],
    dhcp: false,
    hostShim: null,
    publish: [],
  };
  db.prepare(
    `INSERT INTO attachments (guest_kind, guest_id, guest_name, netns_path, ifname, kind, host_if, host_link, mac, mtu, spec, state, owner_pid, created_at)
    VALUES ('netns', 'blue', 'blue', '/run/netns/blue', 'eth0', 'macvlan', 'eth1', NULL, '02:00:00:00:00:01', 1500, ?, 'ready', 1, 'now')`,
  ).run(JSON.stringify(old));
  db.close();
  const store = Store.open(dir);
  t.teardown(() => store.close());
  const rec = findAttachment(store, 'netns', 'blue', 'eth0')!;
  t.notOk('kind' in rec.spec, 'the link kind is only a column now');
  t.ok(
    sameSpec(rec.spec, checkAttachSpec({ hostIf: 'eth1', addresses: ['10.0.0.2/24'] })),
    'the same attach again is the same spec',
  );
});

t.test(
  "a record's owner is its pid with its start time: the same pid in another process is not the owner",
  async (t) => {
    const dir = t.testdir({});
    const store = Store.open(dir);
    t.teardown(() => store.close());
    const id = insertPending(store, {
      guestKind: 'netns',
      guestId: 'red',
      guestName: 'red',
      netnsPath: '/run/netns/red',
      netnsId: null,
      ifname: 'eth0',
      kind: 'veth',
      hostIf: 'br0',
      hostLink: 'pw00000002',
      mac: '02:00:00:00:00:02',
      mtu: 1500,
      spec: checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.3/24'] }),
    });
    const rec = findAttachment(store, 'netns', 'red', 'eth0')!;
    t.equal(rec.ownerPid, process.pid);
    t.ok(ownerAlive(rec), 'this process owns it');
    t.notOk(
      ownerAlive({ ...rec, ownerStart: '1' }),
      'a live pid that started at another time (a reused pid, a reboot) is not the owner',
    );
    store.db.prepare('UPDATE attachments SET owner_pid = 1 WHERE id = ?').run(id);
    t.notOk(
      ownerAlive(findAttachment(store, 'netns', 'red', 'eth0')!),
      'pid 1 is alive, but it did not write this record',
    );
  },
);

const STORE_JS = fileURLToPath(new URL('../../dist/db/store.js', import.meta.url));

t.test('many processes opening one fresh state dir at once all get the migrated store', async (t) => {
  // Every child waits for the same instant, then opens the store: the first use of a hook run in
  // parallel. Several rounds, since the window is narrow.
  for (let round = 0; round < 5; round++) {
    const dir = t.testdir({});
    const at = Date.now() + 1200;
    const script = `
      import { Store } from ${JSON.stringify(STORE_JS)};
      while (Date.now() < ${at}) {}
      Store.open(${JSON.stringify(dir)}).close();
    `;
    const runs = await Promise.all(
      Array.from({ length: 10 }, () => execa('node', ['--input-type=module', '-e', script], { reject: false })),
    );
    const failed = runs.map((r) => r.stderr.split('\n')[0]).filter(Boolean);
    if (failed.length) {
      t.fail(`round ${round}: ${failed[0]}`);
      return;
    }
    const store = Store.open(dir);
    t.equal(
      store.db.pragma('user_version', { simple: true }),
      MIGRATIONS.length,
      `round ${round}: 10 processes opened it, migrated once`,
    );
    store.close();
  }
});

t.test('an opened store waits 60 s for a lock, keeps a write-ahead log and checks foreign keys', async (t) => {
  const dir = t.testdir({});
  for (const round of ['made', 'opened again']) {
    const store = Store.open(dir);
    const pragma = (name: string) => store.db.pragma(name, { simple: true });
    t.same(
      {
        busyTimeout: pragma('busy_timeout'),
        journalMode: pragma('journal_mode'),
        synchronous: pragma('synchronous'),
        foreignKeys: pragma('foreign_keys'),
      },
      { busyTimeout: 60_000, journalMode: 'wal', synchronous: 1, foreignKeys: 1 },
      `${round}: SQLite's busy timeout, WAL, synchronous NORMAL, foreign keys on`,
    );
    store.close();
  }
});

// Each rebuild of attachments for new link kinds: the version it starts from, the kinds it adds.
const REBUILDS = [
  { from: 8, kinds: ['ipvlan', 'vlan'] as const },
  { from: 9, kinds: ['dummy'] as const },
];
for (const { from, kinds } of REBUILDS) {
  t.test(
    `the upgrade to ${kinds.join(' and ')} kinds rebuilds attachments, keeping every row and its published ports`,
    async (t) => {
      const dir = t.testdir({});
      const db = new Database(join(dir, 'pipewright.db'));
      db.pragma('foreign_keys = ON');
      db.exec(MIGRATIONS.slice(0, from).join('\n'));
      db.pragma(`user_version = ${from}`);
      const spec = JSON.stringify(checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'], publish: ['8080:80'] }));
      const { lastInsertRowid } = db
        .prepare(
          `INSERT INTO attachments (guest_kind, guest_id, guest_name, netns_path, ifname, kind, host_if, host_link, mac, mtu, spec, state, owner_pid, created_at, netns_id)
      VALUES ('netns', 'blue', 'blue', '/run/netns/blue', 'eth0', 'veth', 'br0', 'pw00000000', '02:00:00:00:00:01', 1500, ?, 'ready', 1, 'now', '4:4026')`,
        )
        .run(spec);
      db.prepare(
        `INSERT INTO ports (attachment_id, guest_name, proto, host_ip, host_port, host_port_end, ctr_ip, ctr_subnet, ctr_port, bridge)
    VALUES (?, 'blue', 'tcp', '0.0.0.0', 8080, 8080, '10.0.0.2', '10.0.0.0/24', 80, 'br0')`,
      ).run(lastInsertRowid);
      t.throws(
        () => db.prepare(`UPDATE attachments SET kind = ?`).run(kinds[0]),
        /CHECK constraint failed/,
        'the old schema refuses the new kinds',
      );
      db.close();
      const store = Store.open(dir);
      t.teardown(() => store.close());
      const rec = findAttachment(store, 'netns', 'blue', 'eth0')!;
      t.match(
        rec,
        { id: Number(lastInsertRowid), kind: 'veth', hostLink: 'pw00000000', netnsId: '4:4026' },
        'the row came through whole',
      );
      t.same(
        store.db.prepare('SELECT attachment_id, host_port FROM ports').all(),
        [{ attachment_id: Number(lastInsertRowid), host_port: 8080 }],
        'its port was not cascaded away',
      );
      t.equal(store.db.pragma('foreign_keys', { simple: true }), 1, 'foreign keys are on again');
      t.same(store.db.pragma('foreign_key_check'), []);
      for (const kind of kinds) {
        const id = insertPending(store, {
          ...rec,
          kind,
          hostLink: null,
          guestId: kind,
          spec: checkAttachSpec({ hostIf: kind === 'dummy' ? 'none' : 'eth1', addresses: ['10.0.0.3/24'] }),
        });
        t.ok(id > 0, `a ${kind} record is taken`);
      }
    },
  );
}

// Audit #17: step 9 first shipped as an attachments rebuild alone (d67853e); stores it migrated say
// version 9 but have no networks.vlan and vlan_of. Opening one repairs it.
t.test('a store migrated by the first form of step 9 gets the columns that form lacked', async (t) => {
  const dir = t.testdir({});
  const db = new Database(join(dir, 'pipewright.db'));
  db.exec(MIGRATIONS.slice(0, 8).join('\n'));
  db.exec(rebuildAttachments(['veth', 'macvlan', 'ipvlan', 'vlan', 'phys']));
  db.pragma('user_version = 9');
  db.close();
  const store = Store.open(dir);
  t.teardown(() => store.close());
  const columns = (store.db.pragma('table_info(networks)') as { name: string }[]).map((c) => c.name);
  t.ok(columns.includes('vlan') && columns.includes('vlan_of'), 'networks has vlan and vlan_of');
  t.equal(store.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  store.db
    .prepare(
      `INSERT INTO networks (name, bridge, pool, subnet, masquerade, isolated, created_at, vlan, vlan_of) VALUES ('n', 'b', 'p', '10.0.0.0/24', 0, 0, 'now', 10, 'eth1')`,
    )
    .run();
  t.match(store.db.prepare('SELECT vlan, vlan_of FROM networks').get(), { vlan: 10, vlan_of: 'eth1' });
  t.equal(
    Store.open(dir).db.pragma('user_version', { simple: true }),
    MIGRATIONS.length,
    'a second open finds nothing to repair',
  );
});

t.test("a write waits while another process's transaction holds the store for longer than 10 s", async (t) => {
  // Twenty attaches at once in an emulated VM queue longer than that for the write lock (the farm
  // saw "database is locked" at 10 s): a command waits out a busy store, up to its bound.
  const dir = t.testdir({});
  Store.open(dir).close();
  const script = `
    import { Store } from ${JSON.stringify(STORE_JS)};
    const store = Store.open(${JSON.stringify(dir)});
    store.tx(() => {
      store.db.exec("INSERT INTO pools (name, def) VALUES ('held', '{}')");
      console.log('holding');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 11_000);
    });
  `;
  const holder = execa('node', ['--input-type=module', '-e', script]);
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  const store = Store.open(dir);
  t.teardown(() => store.close());
  const t0 = Date.now();
  store.tx(() => store.db.exec("INSERT INTO pools (name, def) VALUES ('late', '{}')"));
  const waited = Date.now() - t0;
  await holder;
  t.ok(waited > 9_000, `it waited for the holder (${waited} ms)`);
  t.same(
    (store.db.prepare('SELECT name FROM pools ORDER BY name').all() as { name: string }[]).map((r) => r.name),
    ['held', 'late'],
    'both writes are in',
  );
});
