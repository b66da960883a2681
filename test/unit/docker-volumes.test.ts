/**
 * The volume driver's handlers on a real store and state dir, called as dockerd calls them (plain
 * directory volumes: no mount needed, so no root): replays count once, a mounted volume is kept.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { Store } from '../../src/db/store.js';
import { volumeDriver } from '../../src/daemon/volume-driver.js';

t.test('create, get, list, mount by ID, unmount, remove; replays count once', async (t) => {
  const store = Store.open(t.testdir({}));
  t.teardown(() => store.close());
  const d = volumeDriver({ store });
  const mountpoint = `${store.stateDir}/volumes/data/_data`;
  t.same(await d.Create({ Name: 'data', Opts: {} }), {});
  t.same(await d.Create({ Name: 'data', Opts: {} }), {}, 'created again: a replay, fine');
  t.ok(existsSync(mountpoint));
  t.match(await d.Get({ Name: 'data' }), { Volume: { Name: 'data', Mountpoint: mountpoint } });
  t.same(await d.List({}), { Volumes: [{ Name: 'data', Mountpoint: mountpoint }] });
  t.same(await d.Mount({ Name: 'data', ID: 'm1' }), { Mountpoint: mountpoint });
  t.same(await d.Mount({ Name: 'data', ID: 'm1' }), { Mountpoint: mountpoint }, 'the same mount ID again');
  await d.Mount({ Name: 'data', ID: 'm2' });
  await d.Unmount({ Name: 'data', ID: 'm1' });
  await t.rejects(async () => d.Remove({ Name: 'data' }), /volume data is in use by docker mount m2; unmount it first/);
  await d.Unmount({ Name: 'data', ID: 'm2' });
  await d.Unmount({ Name: 'data', ID: 'm2' });
  t.same(await d.Remove({ Name: 'data' }), {});
  t.same(await d.Remove({ Name: 'data' }), {}, 'removed again: a replay, fine');
  t.notOk(existsSync(mountpoint));
  await t.rejects(async () => d.Get({ Name: 'data' }), /no volume named data/);
  await t.rejects(
    async () => d.Create({ Name: 'bad', Opts: { colour: 'red' } }),
    /--opt "colour=red": known options are type, o and device/,
  );
  t.same(await d.Capabilities({}), { Capabilities: { Scope: 'local' } });
});
