/**
 * What a daemon does at its start for guests that went while none ran: after a reboot (or any
 * end of their namespace) the attachments of netns guests are undone, their leases released and
 * the bridge pipewright made for them let go; guests still there are left as they are.
 */
import t from 'tap';
import { join } from 'node:path';
import {
  cli,
  hostLinks,
  isRoot,
  must,
  netns,
  removeLinkAtEnd,
  ROOT_REASON,
  sh,
  startDaemon,
  stateDir,
  uniq,
  until,
  waitStopped,
} from '../helpers/host.js';

const json = async (dir: string, args: string[]) => JSON.parse((await cli(dir, [...args, '--json'])).stdout);

t.test(
  "a daemon's start undoes the attachments of netns guests that are gone, and nothing else",
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const [a, b, c] = [await netns(t), await netns(t), await netns(t)];
    const [gone, stays] = [uniq('G'), uniq('S')];
    removeLinkAtEnd(t, gone);
    removeLinkAtEnd(t, stays);
    const links = await hostLinks();
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.247.0.0/24'])).exitCode, 0);
    for (const [bridge, guest] of [
      [gone, a],
      [gone, b],
      [stays, c],
    ]) {
      const r = await cli(dir, ['attach', bridge!, `netns:${guest}`, 'pool:p']);
      t.equal(r.exitCode, 0, r.stderr);
    }
    const kept = (await json(dir, ['ls'])).find((r: { guest: { name: string } }) => r.guest.name === c);
    // As a reboot does to every named netns: a and b are gone (their veths with them), c is still there.
    await must('ip', ['netns', 'del', a]);
    await must('ip', ['netns', 'del', b]);

    const daemon = await startDaemon(t, dir, ['--socket', join(dir, 'plugin.sock'), '--cni-socket', '']);
    t.ok((await until(async () => (await json(dir, ['ls'])).length === 1, 20_000)) >= 0, 'only the live guest is left');
    t.same(await json(dir, ['ls']), [kept], 'the live guest untouched');
    t.same(
      (await json(dir, ['lease', 'ls'])).map((l: { address: string }) => l.address),
      [kept.liveAddresses.find((x: string) => x.startsWith('10.247.')).split('/')[0]],
      'the gone guests released their leases',
    );
    t.same(
      (await hostLinks()).sort(),
      [...links, stays, kept.hostLink].sort(),
      'the bridge made for the gone guests went with them',
    );
    const said = daemon.lines().map((l) => JSON.parse(l) as { undone?: string; reason?: string });
    t.same(
      said.filter((l) => l.undone).map((l) => [l.undone, l.reason]),
      [
        [`${a} eth0`, 'guest no longer exists'],
        [`${b} eth0`, 'guest no longer exists'],
      ],
      'one log line per undone attachment',
    );
  },
);

t.test(
  'the start sweep leaves alone a gone guest restored while it ran (it judges each again just before undoing it)',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const dir = stateDir(t);
    const [back, gone] = [await netns(t), await netns(t)];
    const br = uniq('R');
    removeLinkAtEnd(t, br);
    t.equal((await cli(dir, ['pool', 'create', 'p', '10.247.1.0/24'])).exitCode, 0);
    for (const guest of [back, gone]) t.equal((await cli(dir, ['attach', br, `netns:${guest}`, 'pool:p'])).exitCode, 0);
    const [before] = (await json(dir, ['ls'])).filter((r: { guest: { name: string } }) => r.guest.name === back);
    await must('ip', ['netns', 'del', back]);
    await must('ip', ['netns', 'del', gone]);

    // The sweep stops right after it judged `back` gone from its snapshot; `back` is made again and
    // attached meanwhile (a boot unit).
    const daemon = await startDaemon(t, dir, ['--socket', join(dir, 'plugin.sock'), '--cni-socket', ''], {
      PIPEWRIGHT_FAULT: `gc: ${back} eth0 judged gone:stop`,
    });
    await waitStopped(daemon.proc.pid!);
    await must('ip', ['netns', 'add', back]);
    const attach = await cli(dir, ['attach', br, `netns:${back}`, 'pool:p']);
    t.equal(attach.exitCode, 0, attach.stderr);
    process.kill(daemon.proc.pid!, 'SIGCONT');

    t.ok(
      (await until(async () => (await json(dir, ['ls'])).length === 1, 20_000)) >= 0,
      'the guest that stayed gone was undone',
    );
    const [now] = await json(dir, ['ls']);
    t.match(
      now,
      { guest: { name: back }, status: 'ok', hostLink: before.hostLink },
      'the restored attachment is whole',
    );
    t.equal((await sh('ip', ['-n', back, 'link', 'show', 'eth0'])).exitCode, 0, 'its link is in the new namespace');
    t.equal((await sh('ip', ['link', 'show', before.hostLink])).exitCode, 0, 'and its host end is there');
    t.same(
      (await json(dir, ['lease', 'ls'])).map((l: { owner: string; address: string }) => [l.owner, l.address]),
      [[`netns:${back}/eth0`, before.liveAddresses[0].split('/')[0]]],
      'its lease is held, the same address',
    );
    const said = daemon.lines().map((l) => JSON.parse(l) as { undone?: string });
    t.same(
      said.filter((l) => l.undone).map((l) => l.undone),
      [`${gone} eth0`],
      'only the guest that stayed gone is reported undone',
    );
  },
);
