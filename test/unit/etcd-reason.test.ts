import t from 'tap';
import { grpcReason } from '../../src/net/ipam/etcd-backend.js';

t.test("gRPC's messages, short: what failed, without the status code or an empty note", async (t) => {
  t.equal(
    grpcReason(
      '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:32579. Resolution note: ',
    ),
    'connect ECONNREFUSED 127.0.0.1:32579',
  );
  t.equal(grpcReason('4 DEADLINE_EXCEEDED: Deadline exceeded'), 'Deadline exceeded');
  t.equal(grpcReason('2 UNKNOWN: etcdserver: request timed out'), 'etcdserver: request timed out');
  t.equal(grpcReason('unexpected\nline'), 'unexpected line', 'one line, always');
});
