/**
 * The CLI as a Unix tool in a pipeline: a reader that stops early (`| head`) ends it quietly,
 * exit 0 and no stack trace on stderr, as `ip` or `ls` would.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI } from '../helpers/host.js';

t.test('output into a closed pipe: exit 0, nothing on stderr', async (t) => {
  const proc = spawn(CLI, ['lease', 'reserve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.destroy(); // the reader is gone before the first write
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = await once(proc, 'exit');
  t.equal(code, 0);
  t.equal(stderr, '', 'no EPIPE stack trace');
});
