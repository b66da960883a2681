import t from 'tap';
import { parsePipework } from '../../src/cli/pipework-argv.js';
import { UsageError } from '../../src/util/errors.js';

t.test("pipework's README forms", async (t) => {
  t.match(parsePipework(['br1', 'web', '192.168.1.5/24@192.168.1.1']), {
    type: 'attach',
    guest: 'web',
    text: { hostIf: 'br1', addresses: ['192.168.1.5/24@192.168.1.1'], ifname: 'eth1' },
  });
  t.match(parsePipework(['eth2', '-i', 'eth1', 'web', '10.0.0.5/24', '26:2e:71:98:60:8f']), {
    type: 'attach',
    text: { hostIf: 'eth2', ifname: 'eth1', mac: '26:2e:71:98:60:8f' },
  });
  t.match(parsePipework(['br1', '-l', 'vethweb', 'web', 'dhcp']), {
    text: { hostLink: 'vethweb', addresses: ['dhcp'] },
  });
  t.match(parsePipework(['br1', '-i', 'eth2', '-l', 'vweb', 'web', '10.0.0.5/24', 'U:web']), {
    text: { ifname: 'eth2', hostLink: 'vweb', mac: 'U:web' },
  });
  t.match(parsePipework(['mac:26:2e:71:98:60:8f', 'web', '10.0.0.5/24']), { hostMac: '26:2e:71:98:60:8f' });
  t.match(parsePipework(['br1', '-a', '6', 'web', 'fd00::5/64']), { family: 6 });
  t.match(parsePipework(['eth1', 'web', '10.0.10.5/24', '26:2e:71:98:60:8f@10']), {
    vlan: 10,
    text: { hostIf: 'eth1', mac: '26:2e:71:98:60:8f' },
  });
  t.match(parsePipework(['eth1', 'web', 'dhcp', '@4094']), { vlan: 4094, text: { hostIf: 'eth1', mac: undefined } });
  t.same(parsePipework(['route', 'web', 'add', '10.0.0.0/8', 'via', '192.168.1.254']), {
    type: 'ns',
    tool: 'route',
    guest: 'web',
    args: ['add', '10.0.0.0/8', 'via', '192.168.1.254'],
  });
  t.match(parsePipework(['rule', 'web', 'add', 'from', '10.0.0.5', 'table', '100']), { tool: 'rule' });
  t.match(parsePipework(['tc', 'web', 'qdisc', 'show']), { tool: 'tc' });
});

t.test('unsupported forms answer clearly', async (t) => {
  t.throws(() => parsePipework(['--wait']), /--wait needs a tool inside the container/);
  t.match(parsePipework(['--direct-phys', 'eth1', 'web', '10.0.0.5/24']), {
    text: { hostIf: 'eth1', directPhys: true },
  });
  t.throws(() => parsePipework(['--direct-phys', 'route', 'web', 'add', '10.0.0.0/8']), /--direct-phys goes with/);
  t.throws(
    () => parsePipework(['eth1', 'web', '10.0.0.5/24', '@0']),
    /VLAN id "0" must be a whole number from 1 to 4094/,
  );
  t.throws(() => parsePipework(['eth1', 'web', '10.0.0.5/24', '02:00:00:00:00:01@x']), /VLAN id "x"/);
  t.throws(() => parsePipework(['br1', '-a', '6', 'web', '10.0.0.5/24']), /not an IPv6 address/);
  t.throws(() => parsePipework(['br1']), UsageError);
  t.throws(() => parsePipework(['route', 'web']), UsageError);
});
