/**
 * Host tools as run() starts them (the addon's posix_spawn, src/util/exec.ts): what a tool reads
 * and says, how it ends, what it inherits from Node, and a tool started before its input.
 */
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, startEarly } from '../../src/util/exec.js';
import { TOOL_PATH } from '../../src/util/paths.js';

const sh = (script: string, opts: Parameters<typeof run>[2] = {}) =>
  run('sh', ['-c', script], { allowFailure: true, ...opts });

t.test('a tool reads its input whole and gives back its output, its errors and its exit code', async (t) => {
  t.same(await sh('cat; echo said >&2; exit 3', { input: 'in\n' }), { stdout: 'in', stderr: 'said\n', exitCode: 3 });
  const big = await sh('head -c 300000 /dev/zero | tr "\\0" a; head -c 200000 /dev/zero | tr "\\0" b >&2');
  t.equal(big.stdout, 'a'.repeat(300000), 'stdout over a pipe buffer, whole');
  t.equal(big.stderr, 'b'.repeat(200000), 'stderr too, read at the same time');
  await t.rejects(run('false', []), /^false : exit 1$/, 'a failure is one line naming the tool');
});

t.test('a tool missing from TOOL_PATH, or ended by a signal, is a failure that says so', async (t) => {
  t.same(await run('pipewright-no-such-tool', [], { allowFailure: true }), {
    stdout: '',
    stderr: 'pipewright-no-such-tool: spawn pipewright-no-such-tool ENOENT',
    exitCode: -1,
  });
  t.match(await sh('kill -9 $$'), { exitCode: -1, stderr: 'killed by SIGKILL' });
  const started = performance.now();
  t.match(await sh('exec sleep 20', { timeoutMs: 200 }), { exitCode: -1, stderr: 'killed by SIGTERM' });
  t.ok(performance.now() - started < 5000, 'killed at its timeout');
});

t.test('a tool gets TOOL_PATH, its signals at their defaults, and no descriptor but 0-2', async (t) => {
  // Node ignores SIGPIPE; a tool must not inherit that, nor the caller's PATH or open files.
  const seen = await sh('echo "$PATH"; grep -E "^Sig(Ign|Blk)" /proc/self/status; ls /proc/self/fd', {
    allowFailure: false,
  });
  const [path, blocked, ignored, ...fds] = seen.stdout.split('\n'); // status lists SigBlk first
  t.equal(path, TOOL_PATH);
  const mask = (line = '') => BigInt(`0x${line.split('\t')[1]}`);
  // Signals 1-31 (SIGPIPE is 13); glibc's posix_spawn leaves its own two (32, 33) ignored, as for
  // every program it starts, and glibc sets them up again when a program needs them.
  t.equal(mask(ignored) & 0x7fffffffn, 0n, `no standard signal ignored (${ignored})`);
  t.equal(mask(blocked), 0n, `none blocked (${blocked})`);
  t.same(fds.map(Number).sort(), [0, 1, 2, 3], "0-2 and ls's own directory");
});

t.test('a tool started early is the one the next run of its command line feeds', async (t) => {
  const script = 'date +%s%N; cat';
  const release = startEarly('sh', ['-c', script]);
  await new Promise((r) => setTimeout(r, 300));
  const fed = Date.now();
  const out = await run('sh', ['-c', script], { input: 'fed' });
  await release(); // taken: nothing to do
  const [startedNs, input] = out.stdout.split('\n');
  t.equal(input, 'fed');
  t.ok(fed - Number(BigInt(startedNs!) / 1_000_000n) >= 250, 'it was running before its input came');
});

t.test('a tool started early and not taken gets no input, ends, and is waited for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-exec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mark = join(dir, 'mark');
  const release = startEarly('sh', ['-c', `cat > ${mark}.in; sleep 0.2; echo ended > ${mark}`]);
  await release();
  t.equal(readFileSync(`${mark}.in`, 'utf8'), '', 'its input was empty');
  t.equal(readFileSync(mark, 'utf8'), 'ended\n', 'the release returned once it had ended');
});
