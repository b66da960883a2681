/**
 * How `daemon` and `watch` leave the snapshot (src/cli/own-seed.ts): Node's options without the
 * snapshot and its flags, and the addon's exec, which throws and leaves the process as it was
 * when it cannot run the program.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { withoutSnapshot } from '../../src/cli/own-seed.js';
import { SNAPSHOT_FLAGS } from '../../src/util/snapshot-flags.js';
import { syscalls } from '../../src/util/syscalls.js';

t.test("Node's options without the snapshot and its flags, the others kept in order", async (t) => {
  t.same(withoutSnapshot([...SNAPSHOT_FLAGS, '--snapshot-blob', '/d/pipewright.blob']), []);
  t.same(withoutSnapshot(['--max-old-space-size=512', ...SNAPSHOT_FLAGS, '--snapshot-blob=/d/b', '--trace-warnings']), [
    '--max-old-space-size=512',
    '--trace-warnings',
  ]);
  t.same(
    withoutSnapshot(['--snapshot-blob', '--no-rehash-snapshot', '--inspect']),
    ['--inspect'],
    "the blob's path is skipped whatever it is",
  );
});

t.test('exec of a program that cannot run throws ENOENT, and this process goes on with its stdio', async (t) => {
  // Each descriptor's flags (close-on-exec among them), as the kernel shows them.
  const flags = () =>
    [0, 1, 2].map((fd) => /^flags:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]);
  const before = flags();
  const O_CLOEXEC = 0o2000000;
  t.ok(
    before.every((f) => parseInt(f ?? '0', 8) & O_CLOEXEC),
    'Node started with its stdio close-on-exec',
  );
  t.throws(() => syscalls().exec(['/nonexistent/pipewright-test']), { code: 'ENOENT' });
  t.throws(() => syscalls().exec([]), TypeError, 'an empty argv');
  t.throws(() => syscalls().exec(['/bin/true', 7 as unknown as string]), TypeError, 'a non-string');
  t.same(flags(), before, "stdio's flags as they were (close-on-exec set again)");
});
