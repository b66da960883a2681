/**
 * The C walk over a netlink datagram (native/nl-walk.h, used by syscalls.c's nlRequest), built
 * with ASan and UBSan and fed the two datagrams of audit #3 plus random and mutated ones by
 * native/test/nl-walk-fuzz.c. The walk at 3c6d998 reads past the 17-byte datagram here.
 */
import t from 'tap';
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DRIVER = fileURLToPath(new URL('../../native/test/nl-walk-fuzz.c', import.meta.url));
const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer'];

t.test('the C walk stays within each datagram: the audit pair, random and mutated ones (ASan, UBSan)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-nlwalk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'nl-walk-fuzz');
  const built = await execa(
    'gcc',
    ['-std=gnu11', '-O1', '-g', '-Wall', '-Wextra', '-Werror', ...SANITIZE, '-o', bin, DRIVER],
    { reject: false },
  );
  t.equal(built.exitCode, 0, `gcc: ${built.stderr}`);
  // Two seeds: the fixed default, and one of this run (named in the failure to replay it).
  const seed = String(Date.now());
  for (const args of [[], ['4000', seed]]) {
    const run = await execa(bin, args, {
      reject: false,
      env: { ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' },
    });
    t.equal(run.exitCode, 0, `nl-walk-fuzz ${args.join(' ')}: ${run.stderr}`);
    t.notMatch(run.stderr, /AddressSanitizer|runtime error/, 'no sanitizer report');
    t.match(run.stdout, /^nl-walk-fuzz: 24004 walks, all within their datagrams$/m);
  }
});
