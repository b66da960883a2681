import t from 'tap';
import { configureGuestCmds, createLinkCmds, routesOf, type InterfacePlan } from '../../src/kernel/ip-words.js';
import { parseIpConfig, parseRoute } from '../../src/model/address.js';

const plan: InterfacePlan = {
  kind: 'veth', hostIf: 'br0', hostLink: 'pw01234567', ifname: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500,
  addresses: [parseIpConfig('10.0.0.2/24@10.0.0.1'), parseIpConfig('fd00::2/64@fd00::1')],
  routes: [parseRoute('10.9.0.0/16@10.0.0.254')],
};

t.test('veth: guest end born in the guest netns, host end on the bridge', async (t) => {
  t.same(createLinkCmds(plan, '/run/netns/x'), [
    ['link', 'add', 'name', 'pw01234567', 'mtu', '1500', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1500', 'address', '02:00:00:00:00:01', 'netns', '/run/netns/x'],
    ['link', 'set', 'pw01234567', 'master', 'br0', 'up'],
  ]);
});

t.test('macvlan: one command, created in the guest', async (t) => {
  t.same(createLinkCmds({ ...plan, kind: 'macvlan', hostIf: 'eth1', hostLink: undefined, macvlanMode: 'private' }, '/proc/7/ns/net'), [
    ['link', 'add', 'link', 'eth1', 'name', 'eth0', 'mtu', '1500', 'address', '02:00:00:00:00:01', 'netns', '/proc/7/ns/net', 'type', 'macvlan', 'mode', 'private'],
  ]);
});

t.test('guest config: addresses (IPv6 without DAD), up, then routes', async (t) => {
  t.same(configureGuestCmds(plan), [
    ['link', 'set', 'lo', 'up'],
    ['address', 'add', '10.0.0.2/24', 'dev', 'eth0'],
    ['address', 'add', 'fd00::2/64', 'dev', 'eth0', 'nodad'],
    ['link', 'set', 'eth0', 'up'],
    ['route', 'replace', '0.0.0.0/0', 'via', '10.0.0.1', 'dev', 'eth0'],
    ['route', 'replace', '::/0', 'via', 'fd00::1', 'dev', 'eth0'],
    ['route', 'replace', '10.9.0.0/16', 'via', '10.0.0.254', 'dev', 'eth0'],
  ]);
});

t.test('an explicit default route wins over an address gateway', async (t) => {
  const routes = routesOf({ addresses: [parseIpConfig('10.0.0.2/24@10.0.0.1')], routes: [parseRoute('default@10.0.0.9')] });
  t.same(routes, [{ dst: 'default', family: 4, via: '10.0.0.9' }]);
});
