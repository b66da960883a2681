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
  t.equal(droppingChain(json(chain('ip6', 'f', 'forward', { policy: 'drop' })), 'br0'), null, 'IPv6 only');
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
  const zone = rule('inet', 'firewalld', 'filter_FORWARD_ZONES', [ifname('iifname', 'br0'), { goto: { target: 'x' } }]);
  const d = droppingChain(json(fwd, last), 'br0');
  t.same(d, { family: 'inet', table: 'firewalld', chain: 'filter_FORWARD', why: 'a last rule that drops' });
  t.equal(droppingChain(json(fwd, zone, last), 'br0'), null);
  t.match(
    dropMessage(d!, 'br0', 'nftables'),
    /firewall-cmd --permanent --zone=trusted --add-interface=br0 && firewall-cmd --reload/,
  );
});
