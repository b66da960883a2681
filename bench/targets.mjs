// Each scenario's target, as data: what the row's figure is held to, in words for the table and
// as a check judged once the run's figures are in (a row's time above the floor, its ratio to the
// floor or to the compared tool). results.json keeps the words and the verdict (`met`).

/** A warm-worker command: its median at most `ms` above `node -e 0`'s. */
export const overFloor = (ms) => ({ text: `<= floor + ${ms} ms`, check: (r) => r.overFloor <= ms });

/** A command in its own Node process: its median at most `x` times `node -e 0`'s, sampled in turn with it. */
export const floorRatio = (x) => ({ text: `<= ${x}x node -e 0`, check: (r) => r.floorRatio <= x });

/** pipewright's median at most `x` times the compared tool's (`against` names it). */
export const ratioAtMost = (x, against) => ({ text: `<= ${x}x ${against}`, check: (r) => r.ratio <= x });

/** The scale row: per-guest cost at 1,000 guests at most `x` times that at 10, peak RSS under `mb`. */
export const scaleTarget = (x, mb) => ({
  text: `<= ${x}x, RSS < ${mb} MB`,
  check: (r) => r.ratio <= x && r.peakRssMb < mb,
});

/** Judges every row that has a target: `target` becomes its words, `met` the verdict. */
export function judge(results) {
  for (const r of results) {
    const goal = r.target;
    if (!goal || typeof goal === 'string') continue;
    r.target = goal.text;
    r.met = goal.check(r);
  }
}
