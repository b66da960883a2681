/**
 * The plugin socket lists the calls it is still answering (`Pipewright.Calls`): a failed test's
 * evidence of what a Docker operation that hangs waits on, which the log (a line per call, at
 * its end) cannot show. A real socket, a handler held until the test lets it go.
 */
import t from 'tap';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { servePlugin } from '../../src/daemon/server.js';

function post(socketPath: string, method: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: `/${method}`, method: 'POST' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

t.test('a call in flight is listed with its method until it is answered', async (t) => {
  const dir = mkdtempSync('/tmp/pw-calls-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'plugin.sock');
  let release = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const logged: string[] = [];
  const server = await servePlugin(
    socket,
    { IpamDriver: { RequestAddress: () => held.then(() => ({ Address: '10.0.0.2/24' })) } },
    (e) => logged.push(e.method),
  );
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  t.same(await post(socket, 'Pipewright.Calls'), { Calls: [] }, 'none at first, the listing itself not among them');
  const answered = post(socket, 'IpamDriver.RequestAddress');
  let listed: { Calls: { Id: number; Method: string; Ms: number }[] };
  do listed = (await post(socket, 'Pipewright.Calls')) as typeof listed;
  while (listed.Calls.length === 0);
  t.same(
    listed.Calls.map((c) => c.Method),
    ['IpamDriver.RequestAddress'],
    'the held call is listed',
  );
  t.ok(listed.Calls[0]!.Id > 0 && listed.Calls[0]!.Ms >= 0, 'with an id and its time so far');
  t.notOk(logged.includes('IpamDriver.RequestAddress'), 'which the log does not show yet');
  release();
  t.same(await answered, { Address: '10.0.0.2/24' }, 'the held call answered');
  t.same(await post(socket, 'Pipewright.Calls'), { Calls: [] }, 'answered: no longer listed');
});
