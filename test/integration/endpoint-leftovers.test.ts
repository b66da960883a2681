/**
 * Docker's DeleteNetwork in a daemon that has run many operations: an endpoint record left pending
 * by one of its own operations that ended (a rollback that failed, a call Docker gave up on) is a
 * leftover, though the daemon that owns it is alive; one that an operation still in flight holds
 * is not. Ownership is per operation, not per process.
 */
import t, { type Test } from 'tap';
import { Store } from '../../src/db/store.js';
import { SqliteLeaseBackend } from '../../src/db/ipam-backend.js';
import { Ipam } from '../../src/net/ipam/allocator.js';
import { networkDriver } from '../../src/daemon/network-driver.js';
import { findNetwork } from '../../src/db/networks.js';
import { listAttachments } from '../../src/db/attachments.js';
import { hostLinkExists } from '../../src/net/link-state/sysfs.js';
import { silent } from '../../src/util/log.js';
import { sh, isRoot, ROOT_REASON, stateDir, RUN } from '../helpers/host.js';

const skip = !isRoot && ROOT_REASON;
const hex = (c: string) => `${RUN.slice(2)}${c.repeat(60)}`;

function daemonParts(t: Test) {
  const store = Store.open(stateDir(t));
  t.teardown(() => store.close());
  const ipam = new Ipam(new SqliteLeaseBackend(store), 'host-a');
  const ctx = { store, ipam, firewall: 'nftables' as const, docker: '/nonexistent.sock', log: silent };
  return { ctx, d: networkDriver(ctx).handlers };
}

t.test(
  "DeleteNetwork undoes a pending endpoint of the daemon's own ended operation, then removes the network",
  { skip },
  async (t) => {
    const { ctx, d } = daemonParts(t);
    const [net, ep] = [hex('a'), hex('b')];
    const bridge = `pw-${net.slice(0, 12)}`;
    t.teardown(() => sh('ip', ['link', 'del', bridge]));
    await ctx.ipam.createPool({ name: `${RUN}ops`, cidr: '10.43.0.0/24' });
    await d.CreateNetwork({
      NetworkID: net,
      IPv4Data: [{ AddressSpace: 'pipewright', Pool: '10.43.0.0/24', Gateway: '10.43.0.1/24' }],
    });
    await d.CreateEndpoint({ NetworkID: net, EndpointID: ep, Interface: { Address: '10.43.0.5/24' } });
    const [rec] = listAttachments(ctx.store).filter((r) => r.guestKind === 'endpoint');
    t.teardown(() => sh('ip', ['link', 'del', rec!.hostLink!]));
    t.ok(hostLinkExists(rec!.hostLink!), 'the endpoint has its link');
    // As a removal this daemon began and never finished leaves it: pending, this process's, no operation in flight.
    ctx.store.db.prepare("UPDATE attachments SET state = 'pending', owner_op = NULL WHERE id = ?").run(rec!.id);

    t.same(await d.DeleteNetwork({ NetworkID: net }), {}, 'Docker is answered');
    t.same(listAttachments(ctx.store), [], 'the leftover record is gone');
    t.notOk(hostLinkExists(rec!.hostLink!), 'and its link');
    t.notOk(findNetwork(ctx.store, `docker-${net.slice(0, 12)}`), 'the network record is gone');
    t.notOk(hostLinkExists(bridge), 'and its bridge');
  },
);
