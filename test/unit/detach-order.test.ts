/**
 * What a detach may remove while the firewall's write goes on (under the host's firewall lock):
 * only a veth's host end, in the host's namespace. A guest's namespace (macvlan and the other
 * kinds, source routing) can be slowed down by the guest, and a DHCP client's stop releases its
 * address to a server while the rules still point at it: those wait for the rules, as before.
 */
import t from 'tap';
import { leavesAlongsideRules } from '../../src/ops/detach.js';
import { checkAttachSpec } from '../../src/model/attachment.js';
import type { AttachmentRecord } from '../../src/db/attachments.js';

const record = (kind: AttachmentRecord['kind'], input: Parameters<typeof checkAttachSpec>[0]) =>
  ({ kind, spec: checkAttachSpec(input), dhcpPid: null, dhcpStart: null }) as unknown as AttachmentRecord;

t.test('only a veth without source routing or DHCP leaves alongside the rules', async (t) => {
  t.ok(leavesAlongsideRules(record('veth', { hostIf: 'br0', addresses: ['10.0.0.2/24'], publish: ['8080:80'] })));
  t.notOk(leavesAlongsideRules(record('veth', { hostIf: 'br0', addresses: ['10.0.0.2/24@10.0.0.1'], sbr: true })));
  t.notOk(leavesAlongsideRules(record('veth', { hostIf: 'br0', addresses: ['dhcp'] })));
  t.notOk(leavesAlongsideRules(record('macvlan', { hostIf: 'eth1', addresses: ['10.0.0.3/24'] })));
  t.notOk(leavesAlongsideRules(record('dummy', { hostIf: 'none', addresses: ['10.0.0.4/32'] })));
});
