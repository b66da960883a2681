import t from 'tap';
import {
  checkContainerPath,
  checkVolumeName,
  parseMountSpec,
  parseVolumeOpts,
  sizeBytes,
} from '../../src/storage/spec.js';
import { checkHostPath } from '../../src/storage/host-path.js';
import { UsageError } from '../../src/util/errors.js';

t.test("volume names follow Docker's rule", async (t) => {
  for (const ok of ['data', 'a1', 'my-vol_2.x']) t.equal(checkVolumeName(ok), ok);
  for (const bad of ['', 'a', '.hidden', '-x', '../x', 'a/b', 'a b', 'é1'])
    t.throws(() => checkVolumeName(bad), UsageError, bad);
});

t.test('--opt and --size', async (t) => {
  t.same(parseVolumeOpts(['type=tmpfs,o=size=64m,uid=1000']), { type: 'tmpfs', o: 'size=64m,uid=1000' });
  t.same(parseVolumeOpts(['type=none', 'o=bind', 'device=/srv/x']), { type: 'none', o: 'bind', device: '/srv/x' });
  t.same(parseVolumeOpts([], '1G'), { size: '1G' });
  t.equal(sizeBytes('512M'), 512 * 1024 * 1024);
  t.throws(() => parseVolumeOpts(['type=nfs']), /only tmpfs and none/);
  t.throws(() => parseVolumeOpts(['type=none,device=/x']), /o=bind/);
  t.throws(() => parseVolumeOpts(['type=none,o=bind,device=rel']), /absolute/);
  t.throws(() => parseVolumeOpts(['type=tmpfs'], '1G'), /cannot be combined/);
  t.throws(() => sizeBytes('10k'), /below 1M/);
  t.throws(() => sizeBytes('lots'), /512M/);
});

t.test('mount specs', async (t) => {
  t.same(parseMountSpec('data:/data'), {
    volume: 'data',
    hostPath: null,
    target: '/data',
    readonly: false,
    nocopy: false,
  });
  t.same(parseMountSpec('/srv//x/:/etc/app/:ro,nocopy'), {
    volume: null,
    hostPath: '/srv/x/',
    target: '/etc/app',
    readonly: true,
    nocopy: true,
  });
  for (const bad of ['data', 'data:rel', 'data:/', 'data:/a/../b', '../x:/data', 'data:/d:rx', 'a:b:c:d'])
    t.throws(() => parseMountSpec(bad), UsageError, bad);
  t.equal(checkContainerPath('/var//lib/'), '/var/lib');
});

t.test('host paths that expose the host are refused', async (t) => {
  const dir = t.testdir({ state: {}, data: {} });
  for (const p of ['/', '/proc', '/proc/1', '/sys/kernel', '/dev', `${dir}/state`, `${dir}/state/volumes`, dir]) {
    t.throws(() => checkHostPath(p, `${dir}/state`), /exposes the host|does not exist/, p);
  }
  t.equal(checkHostPath(`${dir}/data`, `${dir}/state`), `${dir}/data`);
  t.equal(checkHostPath('/proc', `${dir}/state`, { allowSensitive: true }), '/proc');
  t.throws(() => checkHostPath(`${dir}/missing`, `${dir}/state`), /does not exist/);
});
