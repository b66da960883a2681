/**
 * The self-healing daemon's pace: a pass that found nothing holds the next one back for
 * QUIET_GAP_MS, so a guest flapping its own interface (link events on the host without end)
 * cannot keep the daemon's event loop reading every host link; after a repair, passes follow
 * the debounce alone.
 */
import t from 'tap';
import { nextPassIn, QUIET_GAP_MS, quietGap } from '../../src/daemon/heal.js';

t.test('after an empty pass the next waits out the quiet gap; after a repair, the debounce', async (t) => {
  const now = 1_000_000;
  t.equal(nextPassIn(now, now + QUIET_GAP_MS), QUIET_GAP_MS, 'right after an empty pass: the whole gap');
  t.equal(nextPassIn(now + 200, now + QUIET_GAP_MS), QUIET_GAP_MS - 200, 'later: what is left of it');
  t.ok(nextPassIn(now, 0) < 100, 'after a repair (or at start): only the debounce');
  t.ok(QUIET_GAP_MS >= 200 && QUIET_GAP_MS <= 500, 'a gap that still lets a repair come within 1 s');
  // A flapping guest's events, one every 10 ms for 2 s, each pass empty: at most 2000 / gap passes.
  let passes = 0;
  let quietUntil = 0;
  let nextAt = 0;
  for (let at = 0; at < 2000; at += 10) {
    if (at < nextAt) continue;
    passes++;
    quietUntil = at + QUIET_GAP_MS;
    nextAt = at + nextPassIn(at, quietUntil);
  }
  t.ok(passes <= Math.ceil(2000 / QUIET_GAP_MS), `${passes} passes in 2 s of flapping`);
});

t.test(
  'an empty pass that took long holds the next back longer: checks take at most a tenth of the time',
  async (t) => {
    t.equal(quietGap(5), QUIET_GAP_MS, 'a quick pass: the gap');
    t.equal(quietGap(80), 800, 'a pass of 80 ms (a firewall beside thousands of rules): ten times it');
    t.equal(quietGap(30_000), 1_000, 'a pass a loaded host slowed: repairs put off 1 s at most');
    // Events without end (Docker starting containers), each pass empty and taking 60 ms: the share of time in passes.
    let busy = 0;
    for (let at = 0; at < 10_000;) {
      busy += 60;
      at += 60 + nextPassIn(at + 60, at + 60 + quietGap(60));
    }
    t.ok(busy / 10_000 <= 0.1, `${((100 * busy) / 10_000).toFixed(0)} % of the time in passes`);
  },
);
