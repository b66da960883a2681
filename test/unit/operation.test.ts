/** Operations in one process: their own ids, and turns on a key (one at a time, reentrant, a bounded wait). */
import t from 'tap';
import { bothEnded, currentOperation, operationInFlight, runOperation, withTurnOn } from '../../src/util/operation.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('each operation has its own id, in flight until it ends; nested calls are part of it', async (t) => {
  t.equal(currentOperation(), null);
  const ids = await Promise.all(
    [1, 2].map(() =>
      runOperation(async () => {
        const id = currentOperation()!;
        t.ok(operationInFlight(id));
        t.equal(await runOperation(async () => currentOperation()), id, 'a nested call joins it');
        return id;
      }),
    ),
  );
  t.not(ids[0], ids[1]);
  t.notOk(operationInFlight(ids[0]!), 'ended');
});

t.test('operations on one key take turns; another key does not wait; the holder re-enters', async (t) => {
  const log: string[] = [];
  const work = (name: string, key: string) =>
    withTurnOn(key, name, async () => {
      log.push(`${name} in`);
      await sleep(30);
      await withTurnOn(key, name, async () => log.push(`${name} again`));
      log.push(`${name} out`);
    });
  await Promise.all([work('a', 'k'), work('b', 'k'), work('c', 'other')]);
  t.same(
    log.filter((l) => l.startsWith('a')),
    ['a in', 'a again', 'a out'],
    'the holder re-entered without waiting for itself',
  );
  t.ok(log.indexOf('a out') < log.indexOf('b in'), `b waited for a: ${log.join(', ')}`);
  t.ok(log.indexOf('c in') < log.indexOf('a out'), 'c, on another key, did not');
});

t.test('a wait has a bound: one line, and who queued behind still waits for the holder', async (t) => {
  const log: string[] = [];
  const holder = withTurnOn('k', 'x eth0', async () => {
    await sleep(150);
    log.push('holder done');
  });
  const late = withTurnOn('k', 'x eth0', async () => log.push('late ran'), 30);
  const next = withTurnOn('k', 'x eth0', async () => log.push('next ran'));
  await t.rejects(late, /^another operation on x eth0 has been under way for over 0\.03 s; retry when it is done$/);
  await Promise.all([holder, next]);
  t.same(log, ['holder done', 'next ran']);
});

t.test('two works at once: both end before the call does, the first failure is thrown', async (t) => {
  const events: string[] = [];
  const work =
    (name: string, ms: number, fail = false) =>
    async () => {
      events.push(`${name} starts`);
      await sleep(ms);
      events.push(`${name} ends`);
      if (fail) throw new Error(`${name} failed`);
    };
  await bothEnded(work('rules', 40), work('link', 20));
  t.same(events, ['rules starts', 'link starts', 'link ends', 'rules ends'], 'the second starts before the first ends');
  events.length = 0;
  await t.rejects(bothEnded(work('rules', 40), work('link', 5, true)), /^link failed$/);
  t.same(events.at(-1), 'rules ends', 'a quick failure still waits for the other');
  await t.rejects(
    bothEnded(work('rules', 5, true), work('link', 5, true)),
    /^rules failed$/,
    "the first's failure wins",
  );
  await bothEnded(work('rules', 1));
  t.equal(events.at(-1), 'rules ends', 'the second is optional');
});
