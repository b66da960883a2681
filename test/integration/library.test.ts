/**
 * pipewright as a user's program imports it: through the package's own `exports` (the shipped
 * dist/index.js), with a context the program builds itself, against the real kernel.
 */
import t from 'tap';
import * as lib from 'pipewright';
import {
  attach,
  attachments,
  checkAttachSpec,
  closeContext,
  detach,
  openContext,
  resolveGuest,
  UsageError,
} from 'pipewright';
import { isRoot, must, netns, removeLinkAtEnd, ROOT_REASON, sh, stateDir, uniq } from '../helpers/host.js';

t.test('the package entry exposes the operations', async (t) => {
  const api =
    'openContext closeContext attach detach restore gc checkAttachSpec resolveGuest createNetwork removeNetwork createVolume mountInto attachments networks volumes';
  for (const name of api.split(' ')) {
    t.type((lib as Record<string, unknown>)[name], 'function', name);
  }
  t.throws(
    () => checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/33'] }),
    UsageError,
    'input is checked before anything runs',
  );
});

t.test("a state directory keeps this host's id: the same on every open, another for another directory", async (t) => {
  const [d1, d2] = [t.testdir({ a: {} }) + '/a', t.testdir({ b: {} }) + '/b'];
  const ids: string[] = [];
  for (const dir of [d1, d1, d2]) {
    const ctx = await openContext({ stateDir: dir });
    ids.push(ctx.ipam.host);
    await closeContext(ctx);
  }
  t.equal(ids[0], ids[1], 'kept');
  t.not(ids[0], ids[2], 'two hosts (cloned VMs included) never share one');
  t.match(ids[0], /-[0-9a-f]{8}$/);
});

t.test(
  'open a context, attach from a pool, detach: the kernel and the store follow',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const ctx = await openContext({ stateDir: stateDir(t), firewall: 'iptables' });
    t.teardown(() => closeContext(ctx));
    const ns = await netns(t);
    const br = uniq('L');
    removeLinkAtEnd(t, br);
    await ctx.ipam.createPool({ name: 'lib', cidr: '10.246.77.0/24' });
    const guest = await resolveGuest(`netns:${ns}`, ctx.docker);
    const spec = checkAttachSpec({ hostIf: br, addresses: ['pool:lib'] });

    const first = await attach(ctx, guest, spec);
    t.ok(first.changed);
    const [link] = JSON.parse(await must('ip', ['-n', ns, '-json', 'address', 'show', 'dev', 'eth0']));
    t.same(
      link.addr_info.filter((a: { family: string }) => a.family === 'inet').map((a: { local: string }) => a.local),
      ['10.246.77.2'],
      'the first pool address is in the kernel',
    );
    t.equal((await attach(ctx, guest, spec)).changed, false, 'the same attach again changes nothing');
    t.equal(attachments(ctx).length, 1);
    t.equal((await ctx.ipam.leases({ pool: 'lib' })).length, 1);

    await detach(ctx, first.attachment);
    t.not((await sh('ip', ['-n', ns, 'link', 'show', 'eth0'])).exitCode, 0, 'eth0 is gone from the guest');
    t.not((await sh('ip', ['link', 'show', br])).exitCode, 0, 'the bridge pipewright made went with its last guest');
    t.same(await ctx.ipam.leases(), [], 'the lease was released');
    t.same(attachments(ctx), []);
  },
);
