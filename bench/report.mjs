// The figures section of docs/performance.md, written from a run's results (bench/run.mjs calls
// writePerformancePage at its end; `node bench/report.mjs` writes it again from bench/results.json).
// Only the text between the two markers is replaced: the rest of the page is prose.
import { readFileSync, writeFileSync } from 'node:fs';

const PAGE = new URL('../docs/performance.md', import.meta.url);
const BEGIN = '<!-- figures: written by npm run bench (bench/report.mjs) from bench/results.json; do not edit -->';
const END = '<!-- end of figures -->';

const num = (x) => (x === null || x === undefined ? '' : x.toFixed(Math.abs(x) < 10 ? 2 : 1));
const times = (x) => (x === null || x === undefined ? '' : `${x.toFixed(2)}x`);
const verdict = (r) => (r.met === undefined ? '' : r.met ? 'met' : '**missed**');

function row(r) {
  if (r.skipped) return `| ${r.scenario} | skipped: ${r.skipped} | | | | | | | |`;
  const split = r.byMethod
    ? ` (${Object.entries(r.byMethod)
        .map(([m, ms]) => `${m.replace(/^\w+Driver\./, '')} ${ms.toFixed(1)}`)
        .join(', ')})`
    : '';
  const rss = r.peakRssMb ? ` (peak RSS ${r.peakRssMb.toFixed(0)} MB)` : '';
  return [
    '',
    ` ${r.scenario}${split}${rss} `,
    ` ${num(r.pipewright.median)} `,
    ` ${num(r.pipewright.p95)} `,
    ` ${num(r.overFloor)} `,
    ` ${times(r.floorRatio)} `,
    ` ${num(r.cni?.median)} `,
    ` ${times(r.ratio)} `,
    ` ${r.target ?? ''} `,
    ` ${verdict(r)} `,
    '',
  ].join('|');
}

/** The figures as markdown: where and when they were measured, then one row per scenario. */
export function figures(run) {
  const h = run.host;
  const host = h
    ? `${h.cores} cores, kernel ${h.kernel}, Node ${h.node}, load average ${h.loadAverage.toFixed(1)} at the start`
    : 'host not recorded';
  const rows = run.results.map(row);
  const met = run.results.filter((r) => r.met === true).length;
  const judged = run.results.filter((r) => r.met !== undefined).length;
  const older = [
    ...new Set(
      run.results
        .filter((r) => r.measured && r.measured.slice(0, 10) !== run.date.slice(0, 10))
        .map((r) => `${r.group ?? 'some'} rows ${r.measured.slice(0, 10)}`),
    ),
  ];
  const when = older.length ? `${run.date.slice(0, 10)} (${older.join(', ')})` : run.date.slice(0, 10);
  return [
    `Measured ${when} (${host}), N = ${run.n}, times in ms; ${met} of ${judged} targets met.`,
    '− floor and × floor: the median minus, and over, `node -e 0` sampled in turn with it; compared: the CNI',
    "reference plugin's median (docker-run: Docker's own bridge); ratio: pipewright / compared (scale: the per-guest",
    'cost at 1,000 guests / at 10).',
    '',
    '| scenario | pipewright median | p95 | − floor | × floor | compared median | ratio | target | |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export function writePerformancePage(run) {
  const page = readFileSync(PAGE, 'utf8');
  const [start, end] = [page.indexOf(BEGIN), page.indexOf(END)];
  if (start < 0 || end < start)
    throw new Error(`docs/performance.md lacks the markers of its figures (${BEGIN} ... ${END})`);
  writeFileSync(PAGE, `${page.slice(0, start + BEGIN.length)}\n${figures(run)}\n${page.slice(end)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writePerformancePage(JSON.parse(readFileSync(new URL('./results.json', import.meta.url), 'utf8')));
}
