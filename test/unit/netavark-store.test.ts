/**
 * The netavark plugin checks a network's options before it opens the store they name: a bad
 * option changes nothing on the host, not even the state dir (which opening makes and chmods).
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runNetavark } from '../../src/netavark/plugin.js';

t.test('setup with an unknown option leaves the named state dir unmade', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'pw-navk-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const stateDir = join(parent, 'state');
  const input = JSON.stringify({
    container_id: 'c'.repeat(64),
    container_name: 'c',
    network: {
      name: 'web',
      id: '0123456789ab'.padEnd(64, 'f'),
      driver: 'pipewright',
      subnets: [{ subnet: '10.89.7.0/24' }],
      options: { state_dir: stateDir, bogus: '1' },
    },
    network_options: { interface_name: 'eth0' },
  });
  const stdin = Object.defineProperty(process, 'stdin', { value: Readable.from([input]), configurable: true });
  const writes: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (writes.push(s), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await runNetavark(['setup', '/run/netns/none'], '0');
  } finally {
    process.stdout.write = write;
    void stdin;
  }
  t.equal(code, 1, 'refused');
  const answer = writes.find((w) => w.startsWith('{"error"')) ?? '{}';
  t.match(JSON.parse(answer), { error: /option bogus is not one of pipewright's/ });
  t.notOk(existsSync(stateDir), 'the state dir was not made');
});
