import t from 'tap';
import type { Rule } from '../../src/net/firewall/rules.js';
import { fullScript } from '../../src/net/firewall/nftables.js';
import { rulesetShape, scriptShape, shapeDiff } from '../../src/net/firewall/drift.js';

const rules: Rule[] = [
  { type: 'bridge-internal', bridge: 'br0' },
  { type: 'dnat', proto: 'tcp', hostIp: '', hostPort: 8080, ctrIp: '10.1.0.2', ctrPort: 80 },
  { type: 'port-forward', proto: 'tcp', bridge: 'br0', ctrIp: '10.1.0.2', ctrPort: 80 },
];

/** `nft -j list ruleset` as the kernel would print it for a shape (plus another program's table). */
function rulesetJson(shape: Map<string, number>): string {
  const items: object[] = [{ metainfo: { version: '1.0.6' } }, { table: { family: 'inet', name: 'other' } }];
  items.push({ rule: { family: 'inet', table: 'other', chain: 'c' } });
  for (const [key, n] of shape) {
    const [kind, family, table, name] = key.split(' ');
    if (kind === 'table') items.push({ table: { family, name: table } });
    if (kind === 'chain') {
      items.push({ chain: { family, table, name } });
      for (let i = 0; i < n; i++) items.push({ rule: { family, table, chain: name } });
    }
    if (kind === 'set') items.push({ set: { family, table, name, elem: Array(n).fill('x') } });
  }
  return JSON.stringify({ nftables: items });
}

t.test('the shape of a full apply: chains with their rule counts, sets with their elements', async (t) => {
  const wanted = scriptShape(fullScript(rules));
  t.equal(wanted.get('table ip pipewright'), 0);
  t.equal(wanted.get('set ip pipewright published'), 1);
  t.equal(wanted.get('set ip pipewright dnat_any'), 1);
  // The IPv6 table has the IPv4 table's chains: its forward chain accepts published ports and the bridge.
  t.equal(wanted.get('chain ip6 pipewright forward'), 2);
  t.equal(wanted.get('set ip6 pipewright published'), 0, 'no IPv6 port here');
  t.ok(wanted.get('chain ip pipewright forward')! >= 2);
});

t.test('the kernel holding that shape is no drift; each loss is named', async (t) => {
  const wanted = scriptShape(fullScript(rules));
  t.equal(shapeDiff(wanted, rulesetShape(rulesetJson(wanted), wanted)), null, 'same shape');
  const noTable = new Map([...wanted].filter(([k]) => !k.includes('ip pipewright')));
  t.equal(shapeDiff(wanted, rulesetShape(rulesetJson(noTable), wanted)), 'table ip pipewright is missing');
  const flushed = new Map([...wanted].map(([k, n]) => [k, k.startsWith('chain ip ') ? 0 : n]));
  t.match(
    shapeDiff(wanted, rulesetShape(rulesetJson(flushed), wanted)),
    /^chain ip pipewright \S+ holds 0 rules, not \d+$/,
  );
  const lostElement = new Map(wanted).set('set ip pipewright published', 0);
  t.equal(
    shapeDiff(wanted, rulesetShape(rulesetJson(lostElement), wanted)),
    'set ip pipewright published holds 0 elements, not 1',
  );
  const extraRule = new Map(wanted).set('chain ip pipewright input', 1);
  t.match(shapeDiff(wanted, rulesetShape(rulesetJson(extraRule), wanted)), /input holds 1 rules, not 0/);
});
