import t from 'tap';
import { addressOf, contains, formatCidr, parseCidr, parseIpConfig, parseRoute } from '../../src/model/address.js';
import { UsageError } from '../../src/util/errors.js';

t.test('addresses with and without gateway', async (t) => {
  t.same(parseIpConfig('10.0.0.5/24@10.0.0.1'), { address: '10.0.0.5', prefix: 24, family: 4, gateway: '10.0.0.1' });
  t.same(parseIpConfig('fd00::5/64'), { address: 'fd00::5', prefix: 64, family: 6 });
  t.same(parseIpConfig('fd00:0::0005/64@fd00::1').address, 'fd00::5', 'IPv6 is normalized');
  t.same(parseIpConfig('10.0.0.1/31').prefix, 31, '/31 has no network or broadcast address');
});

t.test('bad addresses are usage errors naming the value', async (t) => {
  for (const bad of [
    '10.0.0.5',
    '10.0.0.5/33',
    '10.0.0.0/24',
    '10.0.0.255/24',
    '10.0.0.5/24@10.1.0.1',
    '10.0.0.5/24@fd00::1',
    '10.0.0.5/24@10.0.0.5',
    'foo/24',
    '10.0.0.5/24@a@b',
    'fd00::5/129',
    '10.0.0.5/-1',
  ]) {
    t.throws(() => parseIpConfig(bad), UsageError, bad);
  }
  t.throws(() => parseIpConfig('10.0.0.5/24@10.1.0.1'), /outside the subnet/);
});

t.test('routes', async (t) => {
  t.same(parseRoute('10.1.2.3/16@10.0.0.254'), { dst: '10.1.0.0/16', family: 4, via: '10.0.0.254' });
  t.same(parseRoute('default@fd00::1'), { dst: 'default', family: 6, via: 'fd00::1' });
  t.same(parseRoute('fd01::/48'), { dst: 'fd01::/48', family: 6 });
  t.throws(() => parseRoute('default'), /needs @<gateway>/);
  t.throws(() => parseRoute('10.1.0.0/16@fd00::1'), /mixes IPv4 and IPv6/);
});

t.test('contains', async (t) => {
  t.ok(contains('10.0.0.0', 8, '10.200.1.1'));
  t.notOk(contains('10.0.0.0', 8, '11.0.0.1'));
  t.notOk(contains('10.0.0.0', 8, 'fd00::1'));
});

t.test('CIDRs: address as written, prefix and family; formatted back as given', async (t) => {
  t.same(parseCidr('10.1.0.0/16'), { address: '10.1.0.0', prefix: 16, family: 4 });
  t.same(parseCidr('10.0.0.5/32'), { address: '10.0.0.5', prefix: 32, family: 4 });
  t.same(parseCidr('0.0.0.0/0'), { address: '0.0.0.0', prefix: 0, family: 4 });
  t.same(parseCidr('fd00:0::5/64'), { address: 'fd00:0::5', prefix: 64, family: 6 });
  t.same(parseCidr('::/0'), { address: '::', prefix: 0, family: 6 });
  t.equal(formatCidr(parseCidr('fd00::/48')), 'fd00::/48');
  t.equal(formatCidr({ address: '10.2.0.0', prefix: 24 }), '10.2.0.0/24');
});

t.test('bad CIDRs are usage errors in one line naming what they are', async (t) => {
  t.throws(() => parseCidr('10.0.0.0'), { message: 'subnet "10.0.0.0" needs a prefix length, e.g. 10.0.0.5/24' });
  t.throws(() => parseCidr('10.0.0.0/33'), { message: 'subnet "10.0.0.0/33" has a bad prefix length (0 to 32)' });
  t.throws(() => parseCidr('fd00::/129'), { message: 'subnet "fd00::/129" has a bad prefix length (0 to 128)' });
  t.throws(() => parseCidr('10.0.0.0/-1'), /bad prefix length/);
  t.throws(() => parseCidr('10.0.0.0/'), /bad prefix length/);
  t.throws(() => parseCidr('10.0.0.0/2x'), /bad prefix length/);
  t.throws(() => parseCidr('foo/24', 'route'), { message: 'route "foo" is not an IPv4 or IPv6 address' });
  for (const bad of ['', '/24', '10.0.0.0.0/24', '10.0.0.256/24']) t.throws(() => parseCidr(bad), UsageError, bad);
});

t.test('the address of a CIDR or of a bare address, as Docker and CNI runtimes hand them over', async (t) => {
  t.equal(addressOf('10.0.0.5/24'), '10.0.0.5');
  t.equal(addressOf('10.0.0.5'), '10.0.0.5');
  t.equal(addressOf('fd00::5/64'), 'fd00::5');
  t.equal(addressOf(''), '');
});
