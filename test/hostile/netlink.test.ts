/**
 * A guest that is root in its own user namespace (`unshare -Urn`, so it owns its network
 * namespace) forges rtnetlink datagrams at pipewright's sockets in that namespace (audit #3): it
 * finds their portids in its /proc/net/netlink and sends the pair that crashed the old walk, acks,
 * ENODEV errors and empty dump ends. pipewright reads the kernel's answers alone, so it neither
 * dies nor believes a forged answer: what it reports is what the kernel holds.
 */
import t from 'tap';
import { execa } from 'execa';
import { closeSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ifla, IFLA, readAttrs, readString } from '../../src/net/rtnetlink/attrs.js';
import { answerOf, encodeRequest, RTM, splitMessages } from '../../src/net/rtnetlink/message.js';
import { ifinfomsg } from '../../src/net/rtnetlink/rtnl.js';
import { inNetns } from '../../src/net/rtnetlink/sockets.js';
import { syscalls } from '../../src/util/syscalls.js';
import { isRoot, must, ROOT_REASON, stateDir, testHost, uniq, waitStopped } from '../helpers/host.js';

const skip = isRoot ? false : ROOT_REASON;

/**
 * The guest's program; its first line is its own portid. `once`: for each "<portid> <seq>" line
 * read, the forged set for that seq (and one datagram over 64 KiB), then "sent <n>" (how many the
 * kernel took). `flood`: until SIGTERM, the forged set for seqs 1-32 (the old RtSocket's first
 * ones) at every route socket its /proc/net/netlink lists but its own, and at each portid read on
 * stdin (a pid: a process's first socket in a namespace takes its pid as portid) as soon as it
 * exists; then how many datagrams each portid took, as JSON. A socket whose queue holds 64 KiB is
 * left alone until it drains: a full queue makes the kernel drop its own answers, a denial the
 * guest can cause anyway, not the forgery this is about. `trickle`: one forged ack every 100 ms
 * at the portid read on stdin, until killed.
 */
const FORGER = String.raw`
import json, os, signal, socket, struct, sys, threading, time

NLMSG_ERROR, NLMSG_DONE, RTM_NEWLINK, ENODEV = 2, 3, 16, 19

def header(length, kind, seq, flags=0):
    return struct.pack('=IHHII', length, kind, flags, seq, 0)

def end(kind, seq, errno):
    # An error (errno 0: an ack) echoes the request's header (capped); a DONE holds its errno alone.
    body = struct.pack('=i', -errno) + (header(16, 0, seq) if kind == NLMSG_ERROR else b'')
    return header(16 + len(body), kind, seq, 0x100 if kind == NLMSG_ERROR else 0x2) + body

def forged(seqs):
    first = header(20, RTM_NEWLINK, 1) + b'\0' * 4 + header(0x7ffffff0, NLMSG_ERROR, 1)
    yield first + b'\0' * (64 - len(first))
    yield header(17, RTM_NEWLINK, 1) + b'\0'
    for seq in seqs:
        yield end(NLMSG_ERROR, seq, 0)
        yield end(NLMSG_ERROR, seq, ENODEV)
        yield end(NLMSG_DONE, seq, 0)

sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
sock.bind((0, 0))
mine = sock.getsockname()[0]

def send(portid, datagrams):
    sent = 0
    for d in datagrams:
        try:
            sock.sendto(d, socket.MSG_DONTWAIT, (portid, 0))
            sent += 1
        except BlockingIOError:
            pass
        except ConnectionRefusedError:  # no such socket (yet, or any more)
            break
    return sent

def route_sockets():
    with open('/proc/net/netlink') as f:  # sk Eth Pid Groups Rmem ...
        rows = [line.split() for line in f.readlines()[1:]]
    return {int(r[2]): int(r[4]) for r in rows if r[1] == '0' and r[2] not in ('0', str(mine))}

print(mine, flush=True)
if sys.argv[1] == 'once':
    for line in sys.stdin:
        portid, seq = (int(x) for x in line.split())
        n = send(portid, list(forged([seq])) + [end(NLMSG_ERROR, seq, 0) + b'\0' * 70000])
        print('sent', n, flush=True)
elif sys.argv[1] == 'trickle':
    portid = int(sys.stdin.readline())
    while True:
        send(portid, [end(NLMSG_ERROR, 1, 0)])
        time.sleep(0.1)
else:
    hits, named = {}, set()
    threading.Thread(target=lambda: [named.add(int(line)) for line in sys.stdin], daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: (print(json.dumps(hits), flush=True), os._exit(0)))
    queued, scanned = {}, 0.0
    while True:
        if time.monotonic() - scanned > 0.002:
            queued, scanned = route_sockets(), time.monotonic()
        for portid in named | queued.keys():
            if queued.get(portid, 0) < 65536:
                sent = send(portid, forged(range(1, 33)))
                if sent:
                    hits[portid] = hits.get(portid, 0) + sent
                    queued[portid] = 65536  # until the next look says it drained
        time.sleep(0.0003)  # a look every ~0.5 ms, without taking a core from pipewright
`;

const NLM_F_REQUEST = 1;

type T = { teardown(fn: () => unknown): void };

/** The forging guest, started in its own user and network namespaces; killed at teardown. */
async function forgingGuest(t: T, mode: 'once' | 'flood' | 'trickle') {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-forger-'));
  writeFileSync(join(dir, 'forger.py'), FORGER);
  // Niced up: on a busy host it must run while pipewright's socket is open (a few milliseconds).
  const proc = execa('nice', ['-n', '-10', 'unshare', '-Urn', 'python3', join(dir, 'forger.py'), mode], {
    reject: false,
    stdin: 'pipe',
  });
  t.teardown(async () => {
    proc.kill('SIGKILL');
    await proc;
    rmSync(dir, { recursive: true, force: true });
  });
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const line = async () => String((await lines.next()).value ?? `(the forger ended: ${(await proc).stderr})`);
  await line(); // its own portid: it is up, in its namespaces
  return { pid: proc.pid!, proc, line, netns: `/proc/${proc.pid}/ns/net` };
}

/** A socket's portid, from the /proc/net/netlink of a process in the socket's namespace. */
function portidOf(pid: number, fd: number): number {
  const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))![1];
  const rows = readFileSync(`/proc/${pid}/net/netlink`, 'utf8').trim().split('\n').slice(1);
  return Number(rows.map((r) => r.trim().split(/\s+/)).find((r) => r[9] === inode)![2]);
}

t.test(
  "a request in a guest's namespace gets the kernel's answer, not what the guest queued before it",
  { skip },
  async (t) => {
    const guest = await forgingGuest(t, 'once');
    const fd = inNetns(guest.netns, () => syscalls().nlOpen());
    t.teardown(() => closeSync(fd));
    const portid = portidOf(guest.pid, fd);
    /** The guest's forged set for `seq` is queued first; then the request is sent and answered. */
    const ask = async (seq: number, ifname: string) => {
      guest.proc.stdin!.write(`${portid} ${seq}\n`);
      t.equal(await guest.line(), 'sent 6', 'the kernel took all the forged datagrams: the guest can reach the socket');
      return syscalls().nlRequest(
        fd,
        encodeRequest(RTM.GETLINK, 0, seq, Buffer.concat([ifinfomsg(), ifla.ifname(ifname)])),
      );
    };
    const lo = await ask(0x5eed, 'lo');
    t.same(
      splitMessages(lo).map((m) => m.type),
      [RTM.NEWLINK, 2],
      "only the kernel's link and ack are read (forged ack, ENODEV, DONE, the audit's pair, 70 KB dropped)",
    );
    const [link] = answerOf(lo, 0x5eed, 'reading link lo');
    t.equal(readString(readAttrs(link.body, 16).get(IFLA.IFNAME)), 'lo');
    const missing = await ask(0x5eee, 'pwnosuch0');
    t.throws(
      () => answerOf(missing, 0x5eee, 'reading link pwnosuch0'),
      { code: 'ENODEV' },
      "the forged ack is not taken for the kernel's",
    );
  },
);

t.test(
  'a request whose answer never comes ends at its wait, though the guest keeps sending to its socket',
  { skip },
  async (t) => {
    const guest = await forgingGuest(t, 'trickle');
    const waitMs = 400;
    const fd = inNetns(guest.netns, () => syscalls().nlOpen(waitMs));
    t.teardown(() => closeSync(fd));
    guest.proc.stdin!.write(`${portidOf(guest.pid, fd)}\n`);
    // A change sent without NLM_F_ACK: the kernel answers nothing (as when it dropped an answer).
    // Each forged datagram used to restart the socket's wait, so this never ended.
    const silent = encodeRequest(RTM.NEWLINK, 0, 7, ifinfomsg(1));
    silent.writeUInt16LE(NLM_F_REQUEST, 6); // encodeRequest asks for an ack: not this time
    const started = performance.now();
    const ended = await Promise.race([
      syscalls()
        .nlRequest(fd, silent)
        .then(
          () => 'answered',
          (err: Error) => err.message,
        ),
      new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5000).unref()),
    ]);
    const took = performance.now() - started;
    t.match(ended, /^netlink answer: .*timed out/, 'the request failed for want of an answer');
    t.ok(
      took >= waitMs - 5 && took < waitMs + 300,
      `it ended at its wait (${took.toFixed(0)} ms; the wait: ${waitMs})`,
    );
  },
);

interface IpAddr {
  ifname: string;
  flags: string[];
  master?: string;
  addr_info: { local: string; prefixlen: number; scope: string }[];
}

t.test(
  'attach and detach while the guest floods forged answers at every socket pipewright opens in it',
  { skip },
  async (t) => {
    const host = await testHost(t);
    const dir = stateDir(t);
    const guest = await forgingGuest(t, 'flood');
    const br = uniq('br');
    const target = `pid:${guest.pid}`;
    t.teardown(() => host.cli(dir, ['detach', target]));
    /**
     * What the kernel holds in the guest, read by iproute2 while the flood is paused (it would hit
     * ip's socket too).
     */
    const inGuest = async () => {
      guest.proc.kill('SIGSTOP');
      await waitStopped(guest.pid);
      try {
        return JSON.parse(
          await must('nsenter', ['-t', String(guest.pid), '-n', 'ip', '-j', 'address', 'show']),
        ) as IpAddr[];
      } finally {
        guest.proc.kill('SIGCONT');
      }
    };

    const attaching = host.cli(dir, ['attach', br, target, '10.241.7.2/24', 'fd41:7::2/64', '--json']);
    guest.proc.stdin!.write(`${attaching.pid}\n`);
    const attach = await attaching;
    t.equal(attach.signal, undefined, 'attach did not die by a signal');
    t.equal(attach.exitCode, 0, attach.stderr);
    const eth0 = (await inGuest()).find((l) => l.ifname === 'eth0');
    t.ok(eth0?.flags.includes('UP'), "the guest's eth0 is there and up");
    t.same(
      eth0?.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`),
      ['10.241.7.2/24', 'fd41:7::2/64'],
      'it holds the addresses asked for',
    );
    const hostLink = JSON.parse(attach.stdout).hostLink as string;
    const port = JSON.parse(await host.run('ip', ['-j', 'link', 'show', hostLink]))[0] as IpAddr;
    t.equal(port.master, br, 'the host end is on the bridge');

    const detach = await host.cli(dir, ['detach', target]);
    t.equal(detach.signal, undefined, 'detach did not die by a signal');
    t.equal(detach.exitCode, 0, detach.stderr);
    t.same(
      (await inGuest()).map((l) => l.ifname),
      ['lo'],
      "the guest's eth0 is gone",
    );
    t.notOk((await host.links()).includes(hostLink), 'the host end is gone');
    t.same(JSON.parse((await host.cli(dir, ['ls', '--json'])).stdout), [], 'no attachment is left in the store');

    // Detaching a veth deletes its host end alone (the guest's goes with it): no socket in the guest.
    guest.proc.kill('SIGTERM');
    const hits = JSON.parse((await guest.proc).stdout.split('\n').at(-1)!) as Record<string, number>;
    t.ok(
      (hits[String(attaching.pid)] ?? 0) > 0,
      `the flood reached attach's socket in the guest (${JSON.stringify(hits)})`,
    );
  },
);
