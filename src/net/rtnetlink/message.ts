/**
 * rtnetlink messages on the wire (linux/netlink.h, linux/rtnetlink.h): the 16-byte nlmsghdr
 * before each request, and the kernel's answer cut into messages, its error or ack turned into a
 * thrown NetlinkError or the end of the answer.
 */
import { getSystemErrorMap } from 'node:util';
import { readAttrs, readString } from './attrs.js';

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  NEWRULE: 32,
  DELRULE: 33,
} as const;

export const NLM_F = { REQUEST: 0x1, ACK: 0x4, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, DUMP: 0x300 } as const;

export const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const HEADER_LEN = 16;
/**
 * The messages an answer may hold before its end, each with the fixed struct its body starts with
 * (ifinfomsg, ifaddrmsg, rtmsg): the kernel answers pipewright's requests with these alone. A
 * request of another kind needs its answer's type here.
 */
const ANSWER_FIXED_LEN: Record<number, number> = { [RTM.NEWLINK]: 16, [RTM.NEWADDR]: 8, [RTM.NEWROUTE]: 12 };
/** Flags of an NLMSG_ERROR: the request was not echoed (NETLINK_CAP_ACK); TLVs follow (NETLINK_EXT_ACK). */
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  /** The payload after the header (an ifinfomsg with its attributes, say). */
  body: Buffer;
}

/** A request: header (with REQUEST and ACK, so every answer ends in an ack or an error) and body. */
export function encodeRequest(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LEN);
  header.writeUInt32LE(HEADER_LEN + body.length, 0);
  header.writeUInt16LE(type, 4);
  header.writeUInt16LE(flags | NLM_F.REQUEST | NLM_F.ACK, 6);
  header.writeUInt32LE(seq, 8);
  return Buffer.concat([header, body]);
}

/** The messages in a run of datagrams; a truncated tail is dropped. */
export function splitMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  for (let off = 0; off + HEADER_LEN <= buf.length;) {
    const len = buf.readUInt32LE(off);
    if (len < HEADER_LEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      body: buf.subarray(off + HEADER_LEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

/** An error the kernel answered a request with: `code` is its errno name (EEXIST, ENODEV, ...). */
export class NetlinkError extends Error {
  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'NetlinkError';
  }
}

/**
 * The kernel's own sentence for the error (extended ack), when it gave one: attributes after the
 * errno, past the echoed request in an error message (a DONE echoes none).
 */
function extackMessage(m: NlMessage): string | undefined {
  if (!(m.flags & NLM_F_ACK_TLVS)) return undefined;
  if (m.type === NLMSG_DONE) return readString(readAttrs(m.body, 4).get(NLMSGERR_ATTR_MSG));
  if (!(m.flags & NLM_F_CAPPED) && m.body.length < 4 + HEADER_LEN) return undefined;
  const echoed = m.flags & NLM_F_CAPPED ? HEADER_LEN : m.body.readUInt32LE(4);
  return readString(readAttrs(m.body, 4 + ((echoed + 3) & ~3)).get(NLMSGERR_ATTR_MSG));
}

function netlinkError(what: string, m: NlMessage): NetlinkError {
  const errno = -m.body.readInt32LE(0);
  const [code, text] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`];
  const detail = extackMessage(m);
  return new NetlinkError(code, errno, `${what}: ${text} (${code})${detail ? `: ${detail}` : ''}`);
}

const EBADMSG = 74;

/** An answer no kernel writes: one line, never a read past the buffer. */
export function malformed(what: string, detail: string): NetlinkError {
  return new NetlinkError(
    'EBADMSG',
    EBADMSG,
    `${what}: the kernel's answer is malformed (${detail}); report this as a bug`,
  );
}

/**
 * The messages answering request `seq`, before its ack or NLMSG_DONE; an error answer throws,
 * `what` naming the request (as "RTM_NEWLINK eth0"). Every message returned holds its fixed
 * struct whole, so readers need no bounds checks of their own.
 */
export function answerOf(buf: Buffer, seq: number, what: string): NlMessage[] {
  const out: NlMessage[] = [];
  for (const m of splitMessages(buf)) {
    if (m.seq !== seq) continue; // a late answer to an earlier request on this socket
    if (m.type === NLMSG_DONE || m.type === NLMSG_ERROR) {
      // An ack is an error message of errno 0; a dump that failed half-way ends in a DONE holding its errno.
      if (m.body.length < 4) throw malformed(what, `an end of ${m.body.length} bytes`);
      if (m.body.readInt32LE(0) !== 0) throw netlinkError(what, m);
      return out;
    }
    const fixed = ANSWER_FIXED_LEN[m.type];
    if (fixed === undefined || m.body.length < fixed)
      throw malformed(what, `a message of type ${m.type}, ${m.body.length} bytes`);
    out.push(m);
  }
  throw malformed(what, 'no ack or end');
}
