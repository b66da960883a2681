/** Each link driver's kernel steps in iproute2's words (what --verbose prints), and the guest's configuration. */
import t from 'tap';
import { configureGuestWords } from '../../src/net/addresses/guest-config.js';
import { dummy } from '../../src/net/links/dummy.js';
import { ipvlan } from '../../src/net/links/ipvlan.js';
import { macvlan } from '../../src/net/links/macvlan.js';
import { phys } from '../../src/net/links/phys.js';
import { veth } from '../../src/net/links/veth.js';
import { vlan } from '../../src/net/links/vlan.js';
import { chooseDriver } from '../../src/net/links/index.js';
import { checkAttachSpec, routesOf, type AttachmentPlan } from '../../src/model/attachment.js';
import { parseIpConfig, parseRoute } from '../../src/model/address.js';

const plan: AttachmentPlan = {
  kind: 'veth',
  hostIf: 'br0',
  hostLink: 'pw01234567',
  ifname: 'eth0',
  mac: '02:00:00:00:00:01',
  mtu: 1500,
  macvlanMode: null,
  ipvlanMode: null,
  vlan: null,
  metric: null,
  sbrTable: null,
  addresses: [parseIpConfig('10.0.0.2/24@10.0.0.1'), parseIpConfig('fd00::2/64@fd00::1')],
  routes: [parseRoute('10.9.0.0/16@10.0.0.254')],
};

/** An `ip` command line as the argv the drivers describe. */
const words = (line: string) => line.split(' ');

t.test('veth: guest end born in the guest netns, host end on the bridge', async (t) => {
  t.same(veth.describe(plan, '/run/netns/x'), [
    words(
      'link add name pw01234567 mtu 1500 type veth peer name eth0 mtu 1500 address 02:00:00:00:00:01 netns /run/netns/x',
    ),
    words('link set pw01234567 master br0 up'),
  ]);
});

t.test('macvlan: one command, created in the guest', async (t) => {
  t.same(
    macvlan.describe(
      { ...plan, kind: 'macvlan', hostIf: 'eth1', hostLink: null, macvlanMode: 'private' },
      '/proc/7/ns/net',
    ),
    [
      words(
        'link add link eth1 name eth0 mtu 1500 address 02:00:00:00:00:01 netns /proc/7/ns/net type macvlan mode private',
      ),
    ],
  );
});

t.test("ipvlan: no MAC of its own (it has the parent's), its mode; vlan: its id, a MAC of its own", async (t) => {
  const child = { ...plan, hostIf: 'eth1', hostLink: null };
  t.same(ipvlan.describe({ ...child, kind: 'ipvlan', ipvlanMode: 'l3s' }, '/proc/7/ns/net'), [
    words('link add link eth1 name eth0 mtu 1500 netns /proc/7/ns/net type ipvlan mode l3s'),
  ]);
  t.same(vlan.describe({ ...child, kind: 'vlan', vlan: 20 }, '/run/netns/x'), [
    words('link add link eth1 name eth0 mtu 1500 address 02:00:00:00:00:01 netns /run/netns/x type vlan id 20'),
  ]);
});

t.test('ipvlan and vlan: chosen by hand, on an Ethernet NIC only, in one spec each', async (t) => {
  const nic = { bridge: false, mtu: 9000, type: 1, mac: '02:00:00:00:00:09' };
  const spec = (extra: object) => checkAttachSpec({ hostIf: 'eth1', addresses: ['10.0.0.2/24'], ...extra });
  t.ok(ipvlan.serves(nic, spec({ ipvlanMode: 'l2' })) && !ipvlan.serves(nic, spec({})));
  t.ok(vlan.serves(nic, spec({ vlan: '7' })) && !vlan.serves(nic, spec({})));
  t.same(
    ipvlan.plan(nic, spec({ ipvlanMode: 'l3' })),
    { mtu: 9000, mac: '02:00:00:00:00:09', hostEnd: false },
    "an ipvlan has its parent's MAC",
  );
  t.same(vlan.plan(nic, spec({ vlan: 7 })), { mtu: 9000, hostEnd: false });
  t.throws(
    () => vlan.plan({ ...nic, bridge: true }, spec({ vlan: 7 })),
    /eth1 is not an Ethernet NIC .*a bridge.*802\.1q VLAN needs one as its parent/,
  );
  t.throws(
    () => ipvlan.plan(null, spec({ ipvlanMode: 'l2' })),
    /no host interface eth1: an ipvlan needs an existing parent/,
  );
  t.equal(
    chooseDriver(spec({ vlan: 4094 })).driver.kind,
    'vlan',
    'a VLAN is asked for before the host interface is looked at',
  );
  t.throws(() => spec({ vlan: '0' }), /VLAN id "0" must be a whole number from 1 to 4094/);
  t.throws(() => spec({ vlan: '4095' }), /from 1 to 4094/);
  t.throws(() => spec({ vlan: '1e3' }), /from 1 to 4094/);
  t.throws(() => spec({ ipvlanMode: 'l4' }), /ipvlan mode "l4" must be one of l2, l3, l3s/);
  t.throws(() => spec({ ipvlanMode: 'l2', vlan: 5 }), /--vlan and --ipvlan choose different kinds of link; give one/);
  t.throws(() => spec({ vlan: 5, directPhys: true }), /--direct-phys and --vlan/);
  t.throws(() => spec({ ipvlanMode: 'l2', macvlanMode: 'bridge' }), /--ipvlan and --macvlan-mode/);
  t.throws(() => spec({ ipvlanMode: 'l2', mac: '02:00:00:00:00:05' }), /an ipvlan has its parent's MAC; drop --mac/);
});

t.test('dummy: host interface none, made in the guest, no host side; what needs a host side is refused', async (t) => {
  const spec = (extra: object) => checkAttachSpec({ hostIf: 'none', addresses: ['10.99.0.7/32'], ...extra });
  const nic = { bridge: false, mtu: 9000, type: 1, mac: '02:00:00:00:00:09' };
  t.equal(chooseDriver(spec({})).driver.kind, 'dummy', 'none gives a dummy, whatever the host has');
  t.ok(
    dummy.serves(nic, spec({})) && !dummy.serves(nic, checkAttachSpec({ hostIf: 'eth1', addresses: ['10.0.0.2/24'] })),
  );
  t.same(dummy.plan(null, spec({})), { mtu: 1500, hostEnd: false });
  t.same(dummy.describe({ ...plan, kind: 'dummy', hostIf: 'none', hostLink: null, mtu: 9000 }, '/run/netns/x'), [
    words('link add name eth0 mtu 9000 address 02:00:00:00:00:01 type dummy'),
  ]);
  t.equal(
    dummy.check({ kind: 'dummy', hostIf: 'none', hostLink: null, ifname: 'eth0' }),
    null,
    'nothing on the host to drift',
  );
  t.ok(
    spec({ mac: '02:00:00:00:00:05', mtu: '9000', ifname: 'svc0', routes: ['10.98.0.0/16'] }),
    'its own MAC, MTU, name and routes',
  );
  t.throws(
    () => spec({ hostLink: 'vip0' }),
    /host interface none gives a dummy, which has no host side: drop -l\/--host-link, or attach to a bridge or NIC/,
  );
  t.throws(() => spec({ publish: ['8080:80'], hostShim: '10.0.0.9/24' }), /drop --host-shim, -p\/--publish,/);
  t.throws(() => checkAttachSpec({ hostIf: 'none', addresses: ['dhcp'] }), /drop dhcp,/);
  t.throws(() => spec({ vlan: 5 }), /drop --vlan,/);
  t.throws(() => spec({ ipvlanMode: 'l2' }), /drop --ipvlan,/);
  t.throws(() => spec({ directPhys: true }), /drop --direct-phys,/);
  t.throws(() => spec({ macvlanMode: 'vepa' }), /drop --macvlan-mode,/);
});

t.test('drivers: which one serves a host interface, and the parts of the plan it decides', async (t) => {
  const spec = checkAttachSpec({ hostIf: 'eth1', addresses: ['10.0.0.2/24'] });
  const nic = { bridge: false, mtu: 9000, type: 1, mac: '02:00:00:00:00:09' };
  const bridge = { ...nic, bridge: true };
  t.ok(veth.serves(null, spec), 'a missing host interface becomes a bridge');
  t.ok(veth.serves(bridge, spec) && !macvlan.serves(bridge, spec));
  t.ok(macvlan.serves(nic, spec) && !veth.serves(nic, spec));
  t.notOk(macvlan.serves({ ...nic, type: 772 }, spec), 'not on a loopback-type link');
  t.same(veth.plan(null, spec), { mtu: 1500, hostEnd: true });
  t.same(macvlan.plan(nic, spec), { mtu: 9000, hostEnd: false });
  t.same(
    phys.plan(nic, { ...spec, directPhys: true }),
    { mtu: 9000, mac: '02:00:00:00:00:09', hostEnd: false },
    'a moved NIC keeps its MAC',
  );
  t.throws(() => phys.plan(bridge, { ...spec, directPhys: true }), /not an Ethernet NIC/);
  t.throws(() => phys.plan(null, { ...spec, directPhys: true }), /no host interface eth1/);
});

t.test('guest config: addresses (IPv6 without DAD), up, then routes', async (t) => {
  t.same(
    configureGuestWords(plan),
    [
      'link set lo up',
      'address add 10.0.0.2/24 dev eth0',
      'address add fd00::2/64 dev eth0 nodad',
      'link set eth0 up',
      'route replace 0.0.0.0/0 via 10.0.0.1 dev eth0',
      'route replace ::/0 via fd00::1 dev eth0',
      'route replace 10.9.0.0/16 via 10.0.0.254 dev eth0',
    ].map(words),
  );
});

t.test('an explicit default route wins over an address gateway', async (t) => {
  const routes = routesOf({
    addresses: [parseIpConfig('10.0.0.2/24@10.0.0.1')],
    routes: [parseRoute('default@10.0.0.9')],
  });
  t.same(routes, [{ dst: 'default', family: 4, via: '10.0.0.9' }]);
});
