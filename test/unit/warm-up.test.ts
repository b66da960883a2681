/**
 * The startup snapshot's warm-up runs at every build: a command line of its list that no longer
 * parses, or a link that does not come back through the encoding and parsing, fails the build
 * (scripts/build-snapshot.mjs). Here it fails first, naming what broke.
 */
import t from 'tap';
import { warmUp } from '../../src/cli/warm-up.js';
import { EchoKernel } from '../../src/net/rtnetlink/echo.js';
import { getLink, dumpAddresses, newLink, addAddress, delLink } from '../../src/net/rtnetlink/rtnl.js';
import { ifla } from '../../src/net/rtnetlink/attrs.js';
import { parseCidr } from '../../src/model/address.js';

t.test('the warm-up parses its command lines, reads back the link it made, scripts the ports it adds', async (t) => {
  const { link, script } = await warmUp();
  t.same(link, {
    ifname: 'eth0',
    ifindex: 0,
    kind: 'veth',
    master: undefined,
    mtu: 1500,
    mac: '02:00:00:00:00:01',
    up: false,
    addresses: ['10.10.0.5/24'],
  });
  t.notOk(
    script.some((l) => l.startsWith('add table ip ') || l.includes(' 8080 : 10.10.0.5 ')),
    'the IPv4 port was there before: its table is left alone',
  );
  t.ok(script.includes('add element ip6 pipewright dnat_any { tcp . 8080 : fd00::5 . 80 }'), 'its IPv6 twin is added');
  t.ok(
    script.includes('add element ip6 pipewright dnat_addr { 2001:db8::1 . udp . 5353 : fd00::5 . 53 }'),
    'and the port published on an IPv6 host address',
  );
});

t.test('the stand-in kernel lists what was written, answers the rest with an ack', async (t) => {
  const kernel = new EchoKernel();
  await t.rejects(getLink(kernel, 'eth9'), /reading link eth9: .*an ack with no link/, 'nothing made: nothing listed');
  await newLink(kernel, 'eth9', [ifla.ifname('eth9')]);
  await addAddress(kernel, 0, parseCidr('fd00::9/64'));
  await delLink(kernel, 'eth9');
  t.equal((await getLink(kernel, 'eth9')).attrs.size, 1, 'the link made is listed');
  t.match(await dumpAddresses(kernel), [{ family: 6, prefix: 64, address: 'fd00::9' }], 'and its address');
});
