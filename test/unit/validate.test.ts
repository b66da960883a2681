import t from 'tap';
import { checkIfname, checkMac, checkMtu, checkMacvlanMode } from '../../src/model/validate.js';
import { checkAttachSpec, sameSpec } from '../../src/model/attachment.js';
import { macFromText } from '../../src/model/mac.js';
import { UsageError } from '../../src/util/errors.js';
import { checkLease } from '../../src/net/dhcp/dhcp-client.js';
import { execFileSync } from 'node:child_process';

t.test('interface names follow the kernel rules', async (t) => {
  t.equal(checkIfname('eth0'), 'eth0');
  t.equal(checkIfname('a'.repeat(15)), 'a'.repeat(15));
  for (const bad of ['', 'a'.repeat(16), '.', '..', 'a/b', 'a:b', 'a b', 'é'.repeat(8)]) {
    t.throws(() => checkIfname(bad), UsageError, JSON.stringify(bad));
  }
  // A library caller that leaves the field out (say, createNetwork's hostIf): one line naming it.
  t.throws(() => checkIfname(undefined as unknown as string, 'bridge'), new UsageError('bridge is missing'));
});

t.test('interface names are what both rule languages read literally', async (t) => {
  t.equal(checkIfname('br-lan_1.2'), 'br-lan_1.2');
  // iptables wildcards, nft quoting and statement syntax, shell-looking and non-ASCII bytes.
  for (const bad of [
    '-x',
    '.x',
    'br+',
    'br*',
    'a"b',
    "a'b",
    'a;b',
    'a{b',
    'a}b',
    'a\tb',
    'a\nb',
    'a$b',
    'é',
    'a\\b',
    'a@b',
  ]) {
    t.throws(() => checkIfname(bad), /may use only letters, digits/, JSON.stringify(bad));
  }
  t.throws(
    () => checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'], hostLink: 'v+' }),
    /host interface name "v\+"/,
    'at every entry: -l',
  );
  t.throws(() => checkAttachSpec({ hostIf: 'br*', addresses: ['10.0.0.2/24'] }), /host interface "br\*"/, 'the bridge');
  t.throws(() => checkIfname('a\nb'), /"a\\nb"/, 'a control character is shown escaped, the error stays one line');
});

t.test('MACs must be unicast', async (t) => {
  t.equal(checkMac('26:2E:71:98:60:8F'), '26:2e:71:98:60:8f');
  t.throws(() => checkMac('01:00:5e:00:00:01'), /multicast/);
  t.throws(() => checkMac('00:00:00:00:00:00'));
  t.throws(() => checkMac('26:2e:71:98:60'));
});

t.test('MTU range and macvlan modes', async (t) => {
  t.equal(checkMtu('9000'), 9000);
  for (const bad of ['67', '65536', '1500.5', 'x', '1e3', '0x5dc', ' 1500', ''])
    t.throws(() => checkMtu(bad), UsageError, bad);
  t.equal(checkMacvlanMode('vepa'), 'vepa');
  t.throws(() => checkMacvlanMode('source'));
});

t.test('U:<text> MACs equal what pipework derives with md5sum', async (t) => {
  for (const text of ['web', 'db-1', 'hello world']) {
    const md5 = execFileSync('md5sum', { input: `${text}\n` })
      .toString()
      .slice(0, 12);
    const expected = md5
      .replace(/^(.)[13579bdf]/, '$10')
      .match(/../g)!
      .join(':');
    t.equal(macFromText(text), expected, text);
    t.equal(parseInt(expected.slice(0, 2), 16) & 1, 0, 'unicast');
  }
});

t.test('attach text is checked as a whole before the host is touched', async (t) => {
  const req = checkAttachSpec({
    hostIf: 'br0',
    addresses: ['10.0.0.2/24@10.0.0.1', 'fd00::2/64'],
    mac: 'U:web',
    routes: ['10.9.0.0/16@10.0.0.254'],
  });
  t.same(req.addresses, ['10.0.0.2/24@10.0.0.1', 'fd00::2/64']);
  t.equal(req.mac, macFromText('web'));
  t.equal(req.dhcp, false);
  t.equal(req.ifname, 'eth0', 'the default guest interface name is filled in');
  t.ok(checkAttachSpec({ hostIf: 'br0', addresses: ['dhcp'] }).dhcp);
  t.throws(() => checkAttachSpec({ hostIf: 'br0', addresses: ['dhcp', '10.0.0.2/24'] }), /cannot be combined/);
  t.throws(() => checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24', '10.0.0.2/24'] }), /given twice/);
  t.throws(() => checkAttachSpec({ hostIf: 'br0', addresses: [] }), /at least one address/);
  t.throws(() => checkAttachSpec({ hostIf: 'bridge-name-too-long', addresses: ['10.0.0.2/24'] }), /15 bytes/);
});

t.test('a spec is canonical: the same request written differently is the same spec', async (t) => {
  const a = checkAttachSpec({
    hostIf: 'br0',
    addresses: ['10.0.0.02/24'],
    mac: '02:AA:00:00:00:01',
    mtu: '1400',
    routes: ['10.9.1.0/16@10.0.0.254'],
    publish: ['8080:80'],
  });
  const b = checkAttachSpec({
    hostIf: 'br0',
    addresses: ['10.0.0.2/24'],
    mac: '02:aa:00:00:00:01',
    mtu: 1400,
    routes: ['10.9.0.0/16@10.0.0.254'],
    publish: ['8080:80/tcp'],
    ifname: 'eth0',
  });
  t.ok(sameSpec(a, b));
  t.notOk(sameSpec(a, { ...b, mtu: 1500 }));
  t.throws(
    () => checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'], hostLink: 'x'.repeat(16) }),
    /host interface name .* 15 bytes/,
  );
  t.throws(() => checkAttachSpec({ hostIf: 'br0', addresses: ['10.0.0.2/24'], macvlanMode: 'loud' }), /macvlan mode/);
});

t.test('a DHCP lease is checked like user input: ordinary unicast, inside the host interface subnets', async (t) => {
  const lease = (address: string, prefix = 24) => ({ address, prefix, family: 4 as const });
  t.doesNotThrow(() => checkLease(lease('10.0.0.5'), 'br0', ['10.0.0.1/24', 'fd00::1/64']));
  t.doesNotThrow(() => checkLease(lease('192.168.7.9'), 'br0', []), 'a bridge without addresses: any ordinary address');
  t.throws(() => checkLease(lease('10.1.0.5'), 'br0', ['10.0.0.1/24']), /outside br0's subnets \(10\.0\.0\.1\/24\)/);
  for (const bad of ['127.0.0.5', '224.0.0.5', '169.254.3.4', '0.0.0.0', '255.255.255.255', '240.0.0.1']) {
    t.throws(() => checkLease(lease(bad, 8), 'br0', []), /refusing it/, bad);
  }
});
