/**
 * Host locks are flock(2): a holder killed with -9 releases at once (the kernel closes its file),
 * a live holder makes others wait, and callers inside one process take turns.
 */
import t from 'tap';
import { execa } from 'execa';
import { withLock } from '../../src/db/lock.js';

const LOCK = new URL('../../dist/db/lock.js', import.meta.url).href;
const holder = (dir: string) =>
  execa(
    'node',
    [
      '--input-type=module',
      '-e',
      `import { withLock } from '${LOCK}'; await withLock('${dir}', 'links', async () => { console.log('held'); await new Promise((r) => setTimeout(r, 60000)); });`,
    ],
    { reject: false },
  );

/** The holder process once it holds the lock (wrapped: an async function would wait for a returned child to end). */
async function heldBy(dir: string) {
  const child = holder(dir);
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  return { child };
}

t.test('a holder killed with -9 releases the lock at once', async (t) => {
  const dir = t.testdir({});
  const { child } = await heldBy(dir);
  await t.rejects(
    withLock(dir, 'links', async () => 'no', 300),
    /another pipewright has held .*links\.lock/,
    'a live holder keeps it',
  );
  child.kill('SIGKILL');
  await child;
  const t0 = Date.now();
  t.equal(await withLock(dir, 'links', async () => 'mine', 5000), 'mine');
  t.ok(Date.now() - t0 < 1000, 'taken without waiting for any timeout');
});

t.test('callers in one process take turns', async (t) => {
  const dir = t.testdir({});
  const order: string[] = [];
  const job = (name: string) =>
    withLock(dir, 'firewall', async () => {
      order.push(`${name} in`);
      await new Promise((r) => setTimeout(r, 20));
      order.push(`${name} out`);
    });
  await Promise.all([job('a'), job('b'), job('c')]);
  t.same(order, ['a in', 'a out', 'b in', 'b out', 'c in', 'c out']);
});

t.test(
  'what a lock file says is never trusted: a live pid in it (after a reboot) or an empty one holds nothing',
  async (t) => {
    const dir = t.testdir({ 'links.lock': '1', 'volumes.lock': '' });
    t.equal(await withLock(dir, 'links', async () => 'free', 500), 'free', 'pid 1 named in the file');
    t.equal(
      await withLock(dir, 'volumes', async () => 'free', 500),
      'free',
      'an empty file (a holder killed between open and write)',
    );
  },
);
