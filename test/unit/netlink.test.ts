/** rtnetlink framing without a kernel: requests as the kernel reads them, answers as it writes them. */
import t from 'tap';
import {
  IFLA,
  ifla,
  linkKind,
  nla,
  readAttrs,
  readMac,
  readString,
  readU32,
  vethLinkInfo,
  str,
  u32,
} from '../../src/net/rtnetlink/attrs.js';
import { answerOf, encodeRequest, NetlinkError, NLM_F, RTM, splitMessages } from '../../src/net/rtnetlink/message.js';

/** One message as the kernel writes it: header, body, padded to 4 bytes. */
function message(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  const len = 16 + body.length;
  return Buffer.concat([h, body, Buffer.alloc(((len + 3) & ~3) - len)]);
}
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const errorBody = (errno: number, tlvs: Buffer = Buffer.alloc(0)) => {
  const b = Buffer.alloc(4 + 16);
  b.writeInt32LE(-errno, 0);
  return Buffer.concat([b, tlvs]);
};

t.test('a request carries its length, type, REQUEST|ACK and sequence number', async (t) => {
  const body = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const m = encodeRequest(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, 42, body);
  t.equal(m.readUInt32LE(0), 24);
  t.equal(m.readUInt16LE(4), 16, 'RTM_NEWLINK');
  t.equal(m.readUInt16LE(6), 0x1 | 0x4 | 0x400 | 0x200);
  t.equal(m.readUInt32LE(8), 42);
  t.same([...m.subarray(16)], [...body]);
});

t.test('an answer: its messages up to the ack; other sequence numbers skipped', async (t) => {
  const link = Buffer.concat([Buffer.alloc(16), ifla.ifname('eth0'), ifla.mtu(1400)]);
  const buf = Buffer.concat([
    message(RTM.NEWLINK, 0, 6, link),
    message(RTM.NEWLINK, 0, 7, link),
    message(NLMSG_ERROR, 0x100, 7, errorBody(0)),
  ]);
  t.equal(splitMessages(buf).length, 3);
  const answer = answerOf(buf, 7, 'reading link eth0');
  t.equal(answer.length, 1);
  const attrs = readAttrs(answer[0].body, 16);
  t.equal(readString(attrs.get(IFLA.IFNAME)), 'eth0');
  t.equal(readU32(attrs.get(IFLA.MTU)), 1400);
});

t.test('a dump ends at NLMSG_DONE; one that failed half-way throws', async (t) => {
  const ok = Buffer.concat([message(RTM.NEWLINK, 2, 1, Buffer.alloc(16)), message(NLMSG_DONE, 2, 1, Buffer.alloc(4))]);
  t.equal(answerOf(ok, 1, 'listing links').length, 1);
  const failed = Buffer.concat([message(NLMSG_DONE, 2, 1, errorBody(16).subarray(0, 4))]);
  t.throws(() => answerOf(failed, 1, 'listing links'), { code: 'EBUSY' });
});

t.test('an error answer throws its errno name, the request and the kernel sentence (extended ack)', async (t) => {
  const tlv = nla(1, str('Invalid MTU'));
  const buf = message(NLMSG_ERROR, 0x100 | 0x200, 3, errorBody(22, tlv));
  const err = t.throws(() => answerOf(buf, 3, 'creating link pw1')) as NetlinkError;
  t.ok(err instanceof NetlinkError);
  t.equal(err.code, 'EINVAL');
  t.equal(err.errno, 22);
  t.equal(err.message, 'creating link pw1: invalid argument (EINVAL): Invalid MTU');
  const plain = message(NLMSG_ERROR, 0x100, 3, errorBody(17));
  t.throws(() => answerOf(plain, 3, 'creating link pw1'), {
    code: 'EEXIST',
    message: 'creating link pw1: file already exists (EEXIST)',
  });
});

t.test(
  'a veth peer is nested as the kernel parses it: kind, then the peer ifinfomsg with its attributes',
  async (t) => {
    const info = vethLinkInfo({ ifname: 'eth1', mtu: 9000, mac: '02:00:00:aa:bb:cc', netnsFd: 7 });
    const outer = readAttrs(info);
    const linkinfo = outer.get(IFLA.LINKINFO)!;
    t.equal(linkKind(linkinfo), 'veth');
    const data = readAttrs(linkinfo).get(2)!;
    const peer = readAttrs(data).get(1)!;
    const peerAttrs = readAttrs(peer, 16);
    t.equal(readString(peerAttrs.get(IFLA.IFNAME)), 'eth1');
    t.equal(readU32(peerAttrs.get(IFLA.MTU)), 9000);
    t.equal(readMac(peerAttrs.get(IFLA.ADDRESS)), '02:00:00:aa:bb:cc');
    t.equal(readU32(peerAttrs.get(IFLA.NET_NS_FD)), 7);
  },
);

t.test('attributes: padded to 4 bytes, the nested flag masked off, a truncated tail ignored', async (t) => {
  const a = nla(3, Buffer.from('ab\0'));
  t.equal(a.length, 8);
  t.equal(a.readUInt16LE(0), 7);
  const nested = Buffer.from(a);
  nested.writeUInt16LE(3 | 0x8000, 2);
  t.equal(readString(readAttrs(nested).get(3)), 'ab');
  t.equal(readAttrs(Buffer.concat([a, Buffer.from([40, 0, 4, 0])])).size, 1);
  t.equal(readU32(u32(0xffffffff)), 0xffffffff);
});

t.test('answers no kernel writes are refused in one line (audit #3)', async (t) => {
  const ack = message(NLMSG_ERROR, 0x100, 9, errorBody(0));
  const bare = Buffer.alloc(4);
  bare.writeInt32LE(-22, 0);
  t.throws(
    () => answerOf(message(NLMSG_ERROR, 0x200, 9, bare), 9, 'x'),
    { code: 'EINVAL', message: 'x: invalid argument (EINVAL)' },
    'extack flag, nothing echoed',
  );
  t.throws(
    () => answerOf(message(NLMSG_ERROR, 0, 9, Buffer.alloc(2)), 9, 'x'),
    { code: 'EBADMSG' },
    'an error too short for its errno',
  );
  t.throws(
    () => answerOf(Buffer.concat([message(RTM.NEWLINK, 0, 9, Buffer.alloc(8)), ack]), 9, 'x'),
    { code: 'EBADMSG' },
    'a link without its ifinfomsg',
  );
  t.throws(
    () => answerOf(Buffer.concat([message(99, 0, 9, Buffer.alloc(16)), ack]), 9, 'x'),
    { code: 'EBADMSG' },
    'a type no request of ours is answered with',
  );
  t.throws(() => answerOf(message(RTM.NEWLINK, 0, 9, Buffer.alloc(16)), 9, 'x'), {
    code: 'EBADMSG',
    message: /no ack or end/,
  });
  const failedDump = Buffer.concat([bare, nla(1, str('dump interrupted'))]);
  t.throws(() => answerOf(message(NLMSG_DONE, 0x2 | 0x200, 9, failedDump), 9, 'listing links'), {
    message: 'listing links: invalid argument (EINVAL): dump interrupted',
  });
});

/** xorshift32: the same cases at every run. */
function random(seed: number) {
  let x = seed;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

t.test('random and mutated answers: messages whole within the buffer, or one NetlinkError', async (t) => {
  const pick = random(0x2545f491);
  const edges = [0, 15, 16, 17, 0x7ffffff0, 0xffffffff];
  const pair = Buffer.alloc(84);
  pair.writeUInt32LE(20, 0);
  pair.writeUInt32LE(0x7ffffff0, 20);
  pair.writeUInt32LE(17, 64);
  const broken: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const link = Buffer.concat([Buffer.alloc(16), ifla.ifname(`eth${i}`)]);
    const buf =
      i === 0
        ? pair
        : Buffer.concat([
            message(RTM.NEWLINK, 2, 5, link),
            message(RTM.NEWADDR, 2, 5, Buffer.alloc(8 + pick(40))),
            message(NLMSG_DONE, 2, 5, Buffer.alloc(4)),
          ]);
    for (let n = 1 + pick(3); i > 0 && n > 0; n--) {
      const at = pick(buf.length - 3) & ~3;
      if (pick(2)) buf.writeUInt32LE(edges[pick(edges.length)], at);
      else buf[pick(buf.length)] = pick(256);
    }
    const cut = buf.subarray(0, pick(3) ? buf.length : pick(buf.length + 1));
    try {
      for (const m of answerOf(cut, 5, 'listing links'))
        if (m.body.length < (m.type === RTM.NEWLINK ? 16 : 8)) broken.push(`case ${i}: short body`);
    } catch (err) {
      if (!(err instanceof NetlinkError) || err.message.includes('\n')) broken.push(`case ${i}: ${String(err)}`);
    }
  }
  t.same(broken, []);
});
