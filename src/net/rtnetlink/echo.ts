/**
 * A stand-in for the kernel that answers a read with what was written to it before: a link made
 * (RTM_NEWLINK) is what RTM_GETLINK lists, an address added what RTM_GETADDR lists; anything else
 * is acked. It runs the requests' encoding and the answers' parsing with no socket: the startup
 * snapshot's warm-up (src/cli/warm-up.ts) takes the code every link read takes, so V8 keeps it compiled.
 */
import { answerOf, encodeRequest, NLMSG_ERROR, RTM, type NlMessage } from './message.js';
import type { Requester } from './sockets.js';

/** Each read, and the writes whose messages answer it. */
const LISTED_BY: Record<number, number> = { [RTM.GETLINK]: RTM.NEWLINK, [RTM.GETADDR]: RTM.NEWADDR };

export class EchoKernel implements Requester {
  private readonly written = new Map<number, Buffer[]>();
  private seq = 0;

  request(type: number, _flags: number, body: Buffer, what: string): Promise<NlMessage[]> {
    const seq = ++this.seq;
    this.written.set(type, [...(this.written.get(type) ?? []), body]);
    const answerType = LISTED_BY[type];
    const listed = answerType === undefined ? [] : (this.written.get(answerType) ?? []);
    const ack = encodeRequest(NLMSG_ERROR, 0, seq, Buffer.alloc(4));
    const wire = Buffer.concat([...listed.map((b) => encodeRequest(answerType, 0, seq, b)), ack]);
    return Promise.resolve(answerOf(wire, seq, what));
  }
}
