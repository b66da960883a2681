/**
 * The daemon serves CNI calls for as long as it runs (a kubelet or containerd asks STATUS every
 * few seconds): a call on the daemon's own state dir and store uses the daemon's context, and one
 * on another state dir opens a store and closes it again. Its open files stay flat (audit #16).
 */
import t from 'tap';
import { Agent, request } from 'node:http';
import { readdirSync, rmSync } from 'node:fs';
import { cli, isRoot, ROOT_REASON, startDaemon, stateDir, uniq } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const CALLS = Number(process.env.PIPEWRIGHT_TEST_CNI_CALLS ?? 1000);

/** One CNI call on the daemon's socket, as the small CNI client makes it: its exit code. */
function cniCall(socketPath: string, agent: Agent, command: string, conf: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        agent,
        path: '/',
        method: 'POST',
        headers: { 'X-Cni-Command': command, 'X-Cni-Path': '/usr/lib/cni' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.headers['x-cni-exit'])));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(conf));
  });
}

const openFiles = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

t.test(`${CALLS} CNI STATUS calls through the daemon leave its open files as they were`, { skip }, async (t) => {
  const [dir, other] = [stateDir(t), stateDir(t)];
  for (const d of [dir, other]) t.equal((await cli(d, ['pool', 'create', 'p', '10.253.40.0/24'])).exitCode, 0);
  const [socket, pluginSocket] = [`/run/pipewright/${uniq('cni')}.sock`, `/run/docker/plugins/${uniq('pw')}.sock`];
  t.teardown(() => [socket, pluginSocket].forEach((f) => rmSync(f, { force: true })));
  const daemon = await startDaemon(t, dir, ['--socket', pluginSocket, '--cni-socket', socket]);
  const pid = daemon.proc.pid!;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const conf = (stateDir: string) => ({
    cniVersion: '1.1.0',
    name: 'n',
    type: 'pipewright',
    bridge: 'pwfd0',
    pool: 'p',
    stateDir,
  });
  // The first calls warm up what the daemon keeps (its lazily loaded modules, the agent's sockets).
  for (const d of [dir, other]) t.equal(await cniCall(socket, agent, 'STATUS', conf(d)), '0');
  const baseline = openFiles(pid);
  for (let i = 0; i < CALLS; i += 4) {
    const codes = await Promise.all([dir, dir, dir, other].map((d) => cniCall(socket, agent, 'STATUS', conf(d))));
    if (codes.some((c) => c !== '0')) t.fail(`STATUS answered ${codes.join(' ')}`);
  }
  const after = openFiles(pid);
  t.comment(
    `open files: ${baseline} before, ${after} after ${CALLS} calls (3/4 on the daemon's store, 1/4 on another)`,
  );
  t.ok(after <= baseline + 10, `open files ${after} within the baseline ${baseline} + 10`);
});
