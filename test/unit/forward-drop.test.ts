import t from 'tap';
import { droppingChain, dropMessage } from '../../src/net/firewall/forward-drop.js';

type Item = Record<string, object>;
const chain = (family: string, table: string, name: string, extra: object = {}): Item => ({
  chain: { family, table, name, hook: 'forward', prio: 0, policy: 'accept', ...extra },
});
const rule = (family: string, table: string, name: string, expr: object[]): Item => ({
  rule: { family, table, chain: name, expr },
});
const json = (...items: Item[]) => JSON.stringify({ nftables: [{ metainfo: {} }, ...items] });
const ifname = (dir: string, name: string) => ({ match: { op: '==', left: { meta: { key: dir } }, right: name } });
const mark = { match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, 1048576] }, right: 1048576 } };

t.test('chains that drop forwarded traffic, and those that do not', async (t) => {
  t.same(droppingChain(json(chain('inet', 'filter', 'forward', { policy: 'drop' })), 'br0'), {
    family: 'inet',
    table: 'filter',
    chain: 'forward',
    why: 'policy drop',
  });
  t.same(
    droppingChain(
      json(chain('ip', 'fw', 'fwd'), rule('ip', 'fw', 'fwd', [{ counter: {} }, { reject: { type: 'icmpx' } }])),
      'br0',
    )?.why,
    'a last rule that drops',
  );
  t.equal(droppingChain(json(chain('inet', 'filter', 'forward')), 'br0'), null, 'policy accept');
  t.equal(droppingChain(json(chain('ip', 'filter', 'FORWARD', { policy: 'drop' })), 'br0'), null, "iptables' FORWARD");
  t.same(
    droppingChain(json(chain('ip6', 'f', 'forward', { policy: 'drop' })), 'br0'),
    { family: 'ip6', table: 'f', chain: 'forward', why: 'policy drop' },
    "an ip6 table's chain: IPv6 is forwarded too",
  );
  t.equal(
    droppingChain(json(chain('ip6', 'filter', 'FORWARD', { policy: 'drop' })), 'br0'),
    null,
    "ip6tables' FORWARD",
  );
  t.equal(droppingChain(json(chain('ip', 'pipewright', 'forward', { policy: 'drop' })), 'br0'), null, 'ours');
  const drop = chain('inet', 'filter', 'forward', { policy: 'drop' });
  t.equal(
    droppingChain(json(drop, rule('inet', 'filter', 'forward', [ifname('iifname', 'br0'), { accept: null }])), 'br0'),
    null,
    'names the bridge',
  );
  t.not(
    droppingChain(json(drop, rule('inet', 'filter', 'forward', [ifname('iifname', 'br1'), { accept: null }])), 'br0'),
    null,
    'another bridge',
  );
  t.equal(
    droppingChain(json(drop, rule('inet', 'filter', 'forward', [mark, { accept: null }])), 'br0'),
    null,
    'the mark',
  );
  const early = chain('inet', 'filter', 'forward', { policy: 'drop', prio: -10 });
  t.not(
    droppingChain(json(early, rule('inet', 'filter', 'forward', [mark, { accept: null }])), 'br0'),
    null,
    'the mark before pipewright sets it',
  );
});

t.test('a way through is a path of rules on the bridge alone that ends in an accept', async (t) => {
  const drop = chain('inet', 'filter', 'forward', { policy: 'drop' });
  const r = (name: string, ...expr: object[]) => rule('inet', 'filter', name, expr);
  const through = (...rules: Item[]) => droppingChain(json(drop, ...rules), 'br0') === null;
  const br0 = ifname('iifname', 'br0');
  const established = { match: { op: 'in', left: { ct: { key: 'state' } }, right: ['established', 'related'] } };
  t.notOk(through(r('forward', br0, { drop: null })), 'a rule naming the bridge that drops it');
  t.notOk(through(r('forward', br0, { counter: {} })), 'one that only counts it');
  t.notOk(through(r('forward', established, br0, { accept: null })), 'one that accepts its replies only');
  t.ok(through(r('forward', ifname('oifname', 'br0'), { counter: {} }, { accept: null })), 'out to it, counted');
  t.ok(
    through(
      r(
        'forward',
        { match: { op: '==', left: { meta: { key: 'iifname' } }, right: { set: ['br1', 'br0'] } } },
        { accept: null },
      ),
    ),
    'a set holding it',
  );
  t.ok(through(r('forward', br0, { jump: { target: 'allow' } }), r('allow', { accept: null })), 'a jump to an accept');
  t.notOk(
    through(
      r('forward', br0, { jump: { target: 'allow' } }),
      r('allow', { return: null }),
      r('forward', { drop: null }),
    ),
    'a jump that returns, then a drop',
  );
  t.ok(
    through(r('forward', br0, { jump: { target: 'log' } }), r('log', { log: {} }), r('forward', br0, { accept: null })),
    'a jump that comes back, then an accept',
  );
  t.notOk(
    through(
      r('forward', br0, { goto: { target: 'deny' } }),
      r('deny', { reject: {} }),
      r('forward', br0, { accept: null }),
    ),
    'a goto to a reject: the accept after it is never reached',
  );
  t.notOk(through(r('forward', { drop: null }), r('forward', br0, { accept: null })), 'an accept after a drop of all');
  const six = chain('ip6', 'f', 'forward', { policy: 'drop' });
  t.equal(droppingChain(json(six, rule('ip6', 'f', 'forward', [br0, { accept: null }])), 'br0'), null, 'IPv6 too');
});

t.test('the refusal names the chain and a rule that lets the traffic through', async (t) => {
  const d = { family: 'inet', table: 'filter', chain: 'forward', why: 'policy drop' as const };
  t.match(
    dropMessage(d, 'br0', 'nftables'),
    /^nftables chain inet filter forward \(policy drop\) would drop br0's forwarded traffic; .*nft insert rule inet filter forward meta mark and 0x100000 == 0x100000 accept/,
  );
  t.match(
    dropMessage(d, 'br0', 'iptables'),
    /iifname "br0" accept; nft insert rule inet filter forward oifname "br0" accept$/,
  );
});

t.test("firewalld's table: a zone naming the bridge lets it through; the refusal names firewall-cmd", async (t) => {
  const fwd = chain('inet', 'firewalld', 'filter_FORWARD', { prio: 10 });
  const last = rule('inet', 'firewalld', 'filter_FORWARD', [{ reject: { type: 'icmpx' } }]);
  const zones = rule('inet', 'firewalld', 'filter_FORWARD', [{ jump: { target: 'filter_FORWARD_ZONES' } }]);
  const zone = (name: string) =>
    rule('inet', 'firewalld', 'filter_FORWARD_ZONES', [ifname('iifname', 'br0'), { goto: { target: name } }]);
  const trusted = rule('inet', 'firewalld', 'filter_FWD_trusted', [{ accept: null }]);
  const pub = rule('inet', 'firewalld', 'filter_FWD_public', [{ jump: { target: 'filter_FWD_public_allow' } }]);
  const d = droppingChain(json(fwd, last), 'br0');
  t.same(d, { family: 'inet', table: 'firewalld', chain: 'filter_FORWARD', why: 'a last rule that drops' });
  t.equal(droppingChain(json(fwd, zones, zone('filter_FWD_trusted'), trusted, last), 'br0'), null, 'a trusted zone');
  t.same(
    droppingChain(json(fwd, zones, zone('filter_FWD_public'), pub, last), 'br0'),
    d,
    'a zone that names the bridge but does not accept its traffic',
  );
  t.match(
    dropMessage(d!, 'br0', 'nftables'),
    /firewall-cmd --permanent --zone=trusted --add-interface=br0 && firewall-cmd --reload/,
  );
});
