/** Reading what tap printed in a guest: each test's line and time, for the harness's figures. */

/** `<seconds> s  <test name>` for each subtest that ran (tap's "ok N - name # time=Xms"). */
export function testTimes(tapText: string): string[] {
  const out: string[] = [];
  for (const m of tapText.matchAll(/^\s*(not ok|ok) \d+ - (.+?) # time=([\d.]+)ms$/gm)) {
    out.push(`${(Number(m[3]) / 1000).toFixed(1).padStart(6)} s  ${m[1] === 'ok' ? '' : 'FAILED '}${m[2]}`);
  }
  return out;
}
