/**
 * pipewright's own rtnetlink requests against the real kernel, inside a test namespace: what they
 * make is what iproute2 then reads, what they read is what iproute2 reads, and the kernel's
 * errors arrive with their errno name.
 */
import t from 'tap';
import { isRoot, must, netns, ROOT_REASON } from '../helpers/host.js';
import { kindLinkInfo, ifla, vethLinkInfo } from '../../src/net/rtnetlink/attrs.js';
import {
  addAddress,
  delLink,
  getLink,
  ifinfomsg,
  indexIn,
  newLink,
  replaceRoute,
  setLink,
} from '../../src/net/rtnetlink/rtnl.js';
import { answerOf, encodeRequest, RTM } from '../../src/net/rtnetlink/message.js';
import { inNetns, waitOnCallingThread, withNetnsFd, withNetnsSocket } from '../../src/net/rtnetlink/sockets.js';
import { syscalls } from '../../src/util/syscalls.js';
import { closeSync } from 'node:fs';
import { readLinks, readLink } from '../../src/net/link-state/link-state.js';
import { parseIpConfig } from '../../src/model/address.js';

const skip = isRoot ? false : ROOT_REASON;

interface IpLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string };
  addr_info: { local: string; prefixlen: number; scope: string }[];
}

const ipShow = async (ns: string) =>
  JSON.parse(await must('ip', ['-n', ns, '-json', '-details', 'address', 'show'])) as IpLink[];

t.test(
  'links, addresses and routes made over netlink are what iproute2 reads, and read back the same',
  { skip },
  async (t) => {
    const ns = await netns(t);
    const path = `/run/netns/${ns}`;
    await withNetnsSocket(path, async (sock) => {
      await newLink(sock, 'br0', [ifla.ifname('br0'), kindLinkInfo('bridge')]);
      await withNetnsFd(path, (fd) =>
        newLink(sock, 'v0', [
          ifla.ifname('v0'),
          ifla.mtu(1400),
          vethLinkInfo({ ifname: 'v1', mtu: 1400, mac: '02:00:00:00:0a:01', netnsFd: fd }),
        ]),
      );
      await setLink(sock, await indexIn(sock, 'v0'), [ifla.master(await indexIn(sock, 'br0'))], true);
      const v1 = await indexIn(sock, 'v1');
      for (const a of ['10.77.0.2/24', 'fd77::2/64']) await addAddress(sock, v1, parseIpConfig(a));
      await setLink(sock, v1, [], true);
      await replaceRoute(sock, { family: 4, dst: '10.78.0.0/16', via: '10.77.0.1', oif: v1 });
      await replaceRoute(sock, { family: 4, dst: null, via: '10.77.0.254', oif: v1 });
    });

    const ip = await ipShow(ns);
    const v1 = ip.find((l) => l.ifname === 'v1')!;
    t.equal(v1.mtu, 1400);
    t.equal(v1.address, '02:00:00:00:0a:01');
    t.ok(v1.flags.includes('UP'));
    t.same(
      v1.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`),
      ['10.77.0.2/24', 'fd77::2/64'],
    );
    t.equal(ip.find((l) => l.ifname === 'v0')!.master, 'br0');
    const routes = JSON.parse(await must('ip', ['-n', ns, '-json', 'route', 'show', 'proto', 'boot'])) as {
      dst: string;
      gateway: string;
      dev: string;
    }[];
    t.same(
      routes.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`),
      ['default via 10.77.0.254 dev v1', '10.78.0.0/16 via 10.77.0.1 dev v1'],
    );

    const ours = await readLinks(path);
    for (const l of ip) {
      const mine = ours.find((o) => o.ifindex === l.ifindex);
      t.same(
        mine,
        {
          ifname: l.ifname,
          ifindex: l.ifindex,
          kind: l.linkinfo?.info_kind,
          master: l.master,
          mtu: l.mtu,
          mac: l.address,
          up: l.flags.includes('UP'),
          addresses: l.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`),
        },
        `${l.ifname} as iproute2 reads it`,
      );
    }
    t.same(
      await readLink('v0', path),
      ours.find((o) => o.ifname === 'v0'),
      'one link by name',
    );
    t.equal(await readLink('nosuch0', path), null, 'no such link: null');
  },
);

t.test(
  'the kernel errors arrive with their errno name and the request; a socket serves many requests in order',
  { skip },
  async (t) => {
    const ns = await netns(t);
    await withNetnsSocket(`/run/netns/${ns}`, async (sock) => {
      await newLink(sock, 'br1', [ifla.ifname('br1'), kindLinkInfo('bridge')]);
      await t.rejects(newLink(sock, 'br1', [ifla.ifname('br1'), kindLinkInfo('bridge')]), {
        code: 'EEXIST',
        message: /^creating link br1: .*\(EEXIST\)/,
      });
      await t.rejects(getLink(sock, 'nosuch0'), { code: 'ENODEV' });
      await t.rejects(delLink(sock, 'nosuch0'), { code: 'ENODEV' });
      await t.rejects(
        setLink(sock, await indexIn(sock, 'br1'), [ifla.mtu(10)]),
        { code: 'EINVAL' },
        'an MTU below the minimum',
      );
      // Many requests at once on one socket: each gets its own answer.
      const names = Array.from({ length: 40 }, (_, i) => `b${i}`);
      await Promise.all(names.map((n) => newLink(sock, n, [ifla.ifname(n), kindLinkInfo('bridge')])));
      const indexes = await Promise.all(names.map((n) => indexIn(sock, n)));
      t.equal(new Set(indexes).size, 40, 'forty links, forty indexes');
      t.same(
        await Promise.all(indexes.map(async (i) => (await getLink(sock, i)).index)),
        indexes,
        'each answer is its own request',
      );
      await Promise.all(names.map((n) => delLink(sock, n)));
    });
    const left = (await ipShow(ns)).map((l) => l.ifname).sort();
    t.same(left, ['br1', 'lo']);
  },
);

t.test('requests waiting on the calling thread read and fail as those on the thread pool', { skip }, async (t) => {
  const ns = await netns(t);
  const path = `/run/netns/${ns}`;
  await must('ip', ['-n', ns, 'link', 'add', 'd0', 'type', 'bridge']);
  await must('ip', ['-n', ns, 'address', 'add', '10.79.0.1/24', 'dev', 'd0']);
  const read = async (onThread: boolean) => {
    waitOnCallingThread(onThread);
    try {
      const missing = await withNetnsSocket(path, (sock) => getLink(sock, 'nope')).catch((err: Error) => err.message);
      return { link: await readLink('d0', path), links: (await readLinks(path)).length, missing };
    } finally {
      waitOnCallingThread(false);
    }
  };
  const [pooled, onThread] = [await read(false), await read(true)];
  t.match(pooled, { link: { ifname: 'd0', kind: 'bridge', addresses: ['10.79.0.1/24'] }, links: 2 });
  t.match(pooled.missing, /^reading link nope: .*\(ENODEV\)/);
  t.same(onThread, pooled);
});

t.test("gratuitous ARPs reach a bridge's guests through one packet socket the process keeps", { skip }, async (t) => {
  const [host, guest] = [await netns(t, 'ah'), await netns(t, 'ag')];
  for (const [ns, args] of [
    [host, ['link', 'add', 'br0', 'type', 'bridge']],
    [host, ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', guest]],
    [host, ['link', 'set', 'v0', 'master', 'br0', 'up']],
    [host, ['link', 'set', 'br0', 'up']],
    [guest, ['link', 'set', 'eth0', 'up']],
    [guest, ['address', 'add', '10.79.0.2/24', 'dev', 'eth0']],
    [guest, ['neigh', 'add', '10.79.0.9', 'lladdr', '02:00:00:00:00:01', 'dev', 'eth0', 'nud', 'stale']],
  ] as const)
    await must('ip', ['-n', ns, ...args]);
  // In the stand-in host's namespace: the addon's socket is made in its caller's.
  const addon = new URL('../../dist/syscalls.node', import.meta.url).pathname;
  const script = `const s = require(${JSON.stringify(addon)});
    const index = Number(require('fs').readFileSync('/sys/class/net/br0/ifindex', 'utf8'));
    const t0 = performance.now();
    for (let i = 1; i <= 20; i++) s.announce(index, Buffer.from([2, 0, 0, 0, 0, i]), Buffer.from([10, 79, 0, 9]));
    const ms = performance.now() - t0;
    const sockets = require('fs').readFileSync('/proc/net/packet', 'utf8').trim().split('\\n').length - 1;
    console.log(JSON.stringify({ ms, sockets }));`;
  const out = JSON.parse(await must('ip', ['netns', 'exec', host, 'node', '-e', script])) as {
    ms: number;
    sockets: number;
  };
  t.equal(out.sockets, 1, 'one packet socket, kept open');
  // Closing a packet socket waits for an RCU grace period (16 ms on a 2-core VM): once per announcement, 20 took 250 ms.
  t.ok(out.ms < 100, `20 announcements took ${out.ms.toFixed(1)} ms`);
  t.match(
    await must('ip', ['-n', guest, 'neigh', 'show', '10.79.0.9']),
    /lladdr 02:00:00:00:00:14 /,
    "the guest's entry has the last MAC",
  );
});

t.test('a change the kernel makes slower than the socket waits is still answered', { skip }, async (t) => {
  const ns = await netns(t);
  await must('ip', ['-n', ns, 'link', 'add', 'sv0', 'type', 'veth', 'peer', 'name', 'sv1']);
  // A veth's delete waits for RCU inside sendto (~10-30 ms); the socket waits 1 ms for an answer.
  // The wait starts once the kernel made the change: its ack is read, not taken for a silence.
  const fd = inNetns(`/run/netns/${ns}`, () => syscalls().nlOpen(1));
  t.teardown(() => closeSync(fd));
  const started = performance.now();
  const answer = await syscalls().nlRequest(
    fd,
    encodeRequest(RTM.DELLINK, 0, 9, Buffer.concat([ifinfomsg(), ifla.ifname('sv0')])),
  );
  t.comment(`the delete took ${(performance.now() - started).toFixed(1)} ms`);
  t.same(answerOf(answer, 9, 'deleting sv0'), [], 'acked');
  t.notMatch(await must('ip', ['-n', ns, '-o', 'link']), /sv0/, 'and gone');
});
