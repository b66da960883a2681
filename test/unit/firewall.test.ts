import t from 'tap';
import type { FirewallState, PortState } from '../../src/model/firewall-state.js';
import { desiredRules, portsTouched, type Rule } from '../../src/net/firewall/rules.js';
import { renderRule, restoreDelta, CHAINS } from '../../src/net/firewall/iptables.js';
import { toolFailure, toolMessage } from '../../src/util/exec.js';
import { chainRules, elementOf } from '../../src/net/firewall/nftables.js';
import { firewallNames, HOST_FIREWALL } from '../../src/net/firewall/names.js';
import { parsePublish, formatPublish } from '../../src/model/publish.js';
import { UsageError } from '../../src/util/errors.js';
import { portRows, publishedAs } from '../../src/ops/ports.js';

const state: FirewallState = {
  bridges: [
    { bridge: 'br-a', hasGuests: true, network: { subnet: '10.1.0.0/24', masquerade: true, isolated: true } },
    { bridge: 'br-b', hasGuests: false, network: { subnet: '10.2.0.0/24', masquerade: false, isolated: false } },
    { bridge: 'br-c', hasGuests: true },
  ],
  ports: [
    {
      proto: 'tcp',
      hostIp: '',
      hostPort: 8080,
      hostPortEnd: 8081,
      ctrIp: '10.1.0.2',
      ctrSubnet: '10.1.0.0/24',
      ctrPort: 80,
      bridge: 'br-a',
    },
  ],
};

t.test('the rule set follows the store', async (t) => {
  const rules = desiredRules(state);
  const types = rules.map((r) => r.type);
  t.equal(types.filter((x) => x === 'bridge-internal').length, 3, 'every bridge with guests or a network');
  t.same(
    rules.filter((r) => r.type === 'isolate'),
    [
      { type: 'isolate', from: 'br-a', to: 'br-b' },
      { type: 'isolate', from: 'br-b', to: 'br-a' },
    ],
  );
  t.same(
    rules.filter((r) => r.type === 'dnat').map((r) => r.type === 'dnat' && `${r.hostPort}->${r.ctrPort}`),
    ['8080->80', '8081->81'],
    'a range is one DNAT per port',
  );
  t.same(desiredRules({ bridges: [], ports: [] }), [], 'nothing in the store, nothing in the firewall');
});

t.test('iptables: rules in iptables-save form; IPv6 only forwards', async (t) => {
  t.same(
    renderRule({ type: 'dnat', proto: 'udp', hostIp: '127.0.0.1', hostPort: 53, ctrIp: '10.1.0.2', ctrPort: 5353 }, 4),
    {
      table: 'nat',
      chain: CHAINS.dnat,
      spec: '-d 127.0.0.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.1.0.2:5353',
    },
  );
  t.same(renderRule({ type: 'isolate', from: 'a', to: 'b' }, 4), {
    table: 'filter',
    chain: CHAINS.forward,
    spec: '-i a -o b -j DROP',
    first: true,
  });
  t.equal(renderRule({ type: 'masquerade', bridge: 'a', subnet: '10.1.0.0/24' }, 6), null);
  t.ok(renderRule({ type: 'bridge-internal', bridge: 'a' }, 6));
});

t.test('iptables: the delta adds what is missing, deletes what is not wanted, and nothing else', async (t) => {
  const saved = [
    '*filter',
    ':FORWARD DROP [0:0]',
    `:${CHAINS.forward} - [0:0]`,
    `-A FORWARD -j ${CHAINS.forward}`,
    '-A FORWARD -j DOCKER-USER',
    `-A ${CHAINS.forward} -i old -o old -j ACCEPT`,
    `-A ${CHAINS.forward} -i keep -o keep -j ACCEPT`,
    'COMMIT',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    'COMMIT',
    '',
  ].join('\n');
  const wanted = [
    renderRule({ type: 'bridge-internal', bridge: 'keep' }, 4)!,
    renderRule({ type: 'masquerade', bridge: 'keep', subnet: '10.9.0.0/24' }, 4)!,
  ];
  t.equal(
    restoreDelta(saved, wanted),
    [
      '*filter',
      `-D ${CHAINS.forward} -i old -o old -j ACCEPT`,
      'COMMIT',
      '*nat',
      `:${CHAINS.post} - [0:0]`,
      `-A ${CHAINS.post} -s 10.9.0.0/24 ! -o keep -j MASQUERADE`,
      `-A POSTROUTING -j ${CHAINS.post}`,
      'COMMIT',
      '',
    ].join('\n'),
  );
  t.equal(
    restoreDelta(saved.replace(`-A ${CHAINS.forward} -i old -o old -j ACCEPT\n`, ''), [wanted[0]]),
    null,
    'in sync: no write',
  );
  t.equal(
    restoreDelta(saved, []),
    [
      '*filter',
      `-D ${CHAINS.forward} -i old -o old -j ACCEPT`,
      `-D ${CHAINS.forward} -i keep -o keep -j ACCEPT`,
      `-D FORWARD -j ${CHAINS.forward}`,
      `-X ${CHAINS.forward}`,
      'COMMIT',
      '',
    ].join('\n'),
    'nothing wanted: our chain and hook go',
  );
});

t.test('nftables: ports are set elements, bridges are chain rules', async (t) => {
  t.same(elementOf({ type: 'dnat', proto: 'tcp', hostIp: '', hostPort: 8080, ctrIp: '10.1.0.2', ctrPort: 80 }), [
    'dnat_any',
    'tcp . 8080 : 10.1.0.2 . 80',
  ]);
  t.same(elementOf({ type: 'port-forward', proto: 'udp', bridge: 'br-a', ctrIp: '10.1.0.2', ctrPort: 53 }), [
    'published',
    '"br-a" . 10.1.0.2 . udp . 53',
  ]);
  const rules = chainRules(desiredRules(state), 4);
  const drop = rules.findIndex((r) => r.endsWith('drop'));
  const accept = rules.findIndex((r) => r.includes('forward') && r.endsWith('accept'));
  t.ok(drop >= 0 && drop < accept, 'isolation drops come before accepts');
  t.ok(rules.includes('add rule ip pipewright postrouting ip saddr 10.1.0.0/24 oifname != "br-a" masquerade'));
});

t.test('-p follows docker run -p', async (t) => {
  t.same(parsePublish('8080:80'), {
    proto: 'tcp',
    hostIp: '',
    hostPort: 8080,
    hostPortEnd: 8080,
    ctrPort: 80,
    ctrPortEnd: 80,
  });
  t.same(parsePublish('127.0.0.1:5000-5002:6000-6002/udp'), {
    proto: 'udp',
    hostIp: '127.0.0.1',
    hostPort: 5000,
    hostPortEnd: 5002,
    ctrPort: 6000,
    ctrPortEnd: 6002,
  });
  t.equal(formatPublish(parsePublish('127.0.0.1:5000-5002:6000-6002/udp')), '127.0.0.1:5000-5002:6000-6002/udp');
  for (const bad of [
    '80',
    '0:80',
    '8080:80/sctp',
    '8080-8081:80',
    'x:80:80',
    '[::1]:80:80',
    '70000:80',
    '8080:80:90:1',
  ]) {
    t.throws(() => parsePublish(bad), UsageError, bad);
  }
});

t.test("a tool's failure says the tool's own words, past its banner", async (t) => {
  t.equal(
    toolMessage(
      'iptables-restore v1.8.9 (nf_tables): \nline 3: RULE_DELETE failed (No such file or directory): rule in chain FORWARD\n',
    ),
    'line 3: RULE_DELETE failed (No such file or directory): rule in chain FORWARD',
  );
  t.equal(
    toolMessage('Error: Could not process rule: No such file or directory\n'),
    'Error: Could not process rule: No such file or directory',
  );
  const failed = { stdout: '', stderr: 'Error: Could not process rule: Operation not permitted\n', exitCode: 1 };
  t.equal(
    toolFailure('nft', ['-j', 'list', 'table', 'ip', 'pipewright'], failed, 5).message,
    'nft -j list table ip pipewright: Error: Could not process rule: Operation not permitted',
    'the command as far as asked, then its words',
  );
  t.equal(toolFailure('nft', ['-f', '-'], { ...failed, stderr: '' }).message, 'nft -f -: exit 1', 'or its exit code');
});

t.test(
  'firewall sync repairs duplicated hooks and rules in its own chains, and drops foreign ones there',
  async (t) => {
    const saved = [
      '*filter',
      ':FORWARD DROP [0:0]',
      `:${CHAINS.forward} - [0:0]`,
      `-A FORWARD -j ${CHAINS.forward}`,
      `-A FORWARD -j ${CHAINS.forward}`,
      '-A FORWARD -i docker0 -j ACCEPT',
      '-A FORWARD -i docker0 -j ACCEPT',
      `-A ${CHAINS.forward} -i br-c -o br-c -j ACCEPT`,
      `-A ${CHAINS.forward} -i br-c -o br-c -j ACCEPT`,
      `-A ${CHAINS.forward} -i br-x -o br-x -j ACCEPT`,
      'COMMIT',
    ].join('\n');
    const wanted = [{ table: 'filter' as const, chain: CHAINS.forward, spec: '-i br-c -o br-c -j ACCEPT' }];
    const delta = restoreDelta(saved, wanted) ?? '';
    t.equal(
      delta.split('\n').filter((l) => l === `-D FORWARD -j ${CHAINS.forward}`).length,
      1,
      'one of the two hooks goes',
    );
    t.equal(
      delta.split('\n').filter((l) => l === `-D ${CHAINS.forward} -i br-c -o br-c -j ACCEPT`).length,
      1,
      'one of the two copies goes',
    );
    t.match(delta, `-D ${CHAINS.forward} -i br-x -o br-x -j ACCEPT`, 'a rule the store does not know goes');
    t.notMatch(delta, 'docker0', "another program's duplicates are its own business");
    const repaired = restoreDelta(
      [
        '*filter',
        `:${CHAINS.forward} - [0:0]`,
        `-A FORWARD -j ${CHAINS.forward}`,
        `-A ${CHAINS.forward} -i br-c -o br-c -j ACCEPT`,
        'COMMIT',
      ].join('\n'),
      wanted,
    );
    t.equal(repaired, null, 'once repaired, a second sync writes nothing');
  },
);

t.test('-p with an IPv6 host address: in brackets, canonical; ::1 and bad forms refused in one line', async (t) => {
  t.same(parsePublish('[2001:DB8:0::1]:8080:80/udp'), {
    proto: 'udp',
    hostIp: '2001:db8::1',
    hostPort: 8080,
    hostPortEnd: 8080,
    ctrPort: 80,
    ctrPortEnd: 80,
  });
  t.equal(formatPublish(parsePublish('[2001:db8:0:0::1]:8080-8081:80-81')), '[2001:db8::1]:8080-8081:80-81/tcp');
  t.equal(parsePublish('[::]:80:80').hostIp, '::', 'every IPv6 address');
  t.equal(parsePublish('0.0.0.0:80:80').hostIp, '0.0.0.0', 'every IPv4 address');
  t.throws(() => parsePublish('[::1]:8080:80'), /\[::1\] cannot be published \(IPv6 has no route_localnet\)/);
  for (const bad of [
    '2001:db8::1:80:80',
    '[2001:db8::1]80:80',
    '[2001:db8::1]:80',
    '[2001:db8::1:80:80',
    '[]:80:80',
    '[1.2.3.4]:80:80',
    '[fe80::1%eth0]:80:80',
    '[fe80::1]:80:80',
    '[::ffff:1.2.3.4]:80:80',
    '[ff02::1]:80:80',
    '[::1] ; flush ruleset ; [::2]:80:80',
  ]) {
    let err: Error | undefined;
    try {
      parsePublish(bad);
    } catch (e) {
      err = e as Error;
    }
    t.type(err, UsageError, bad);
    t.notOk(err?.message.includes('\n'), `${bad}: one line`);
  }
});

t.test('IPv6 ports: rules of their own family, no route_localnet twin, ::1 never DNATed', async (t) => {
  const v6: FirewallState = {
    bridges: [{ bridge: 'br-6', hasGuests: true }],
    ports: [
      { ...state.ports[0], bridge: 'br-6', hostPortEnd: 8080, ctrIp: '10.6.0.2', ctrSubnet: '10.6.0.0/24' },
      {
        ...state.ports[0],
        bridge: 'br-6',
        hostIp: '2001:db8::1',
        hostPortEnd: 8080,
        ctrIp: 'fd00:6::2',
        ctrSubnet: 'fd00:6::/64',
      },
    ],
  };
  const rules = desiredRules(v6);
  t.same(
    rules.filter((r) => r.type === 'bridge-replies'),
    [
      { type: 'bridge-replies', family: 4, bridge: 'br-6' },
      { type: 'bridge-replies', family: 6, bridge: 'br-6' },
    ],
  );
  t.equal(rules.filter((r) => r.type === 'localnet').length, 1, 'route_localnet masquerade: IPv4 only');
  const dnat6 = rules.find((r) => r.type === 'dnat' && r.ctrIp === 'fd00:6::2')!;
  t.same(renderRule(dnat6, 6), {
    table: 'nat',
    chain: CHAINS.dnat,
    spec: '-d 2001:db8::1/128 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:6::2]:80',
  });
  t.equal(renderRule(dnat6, 4), null, 'an IPv6 port has no IPv4 rule');
  const hairpin6 = rules.find((r) => r.type === 'hairpin' && r.ctrIp === 'fd00:6::2')!;
  t.equal(
    renderRule(hairpin6, 6)?.spec,
    '-s fd00:6::/64 -d fd00:6::2/128 -o br-6 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j MASQUERADE',
  );
  t.same(elementOf(dnat6), ['dnat_addr', '2001:db8::1 . tcp . 8080 : fd00:6::2 . 80']);
  const six = chainRules(rules, 6);
  t.ok(six.includes('add rule ip6 pipewright output ip6 daddr != ::1 fib daddr type local jump port_dnat'));
  t.ok(
    six.includes(
      'add rule ip6 pipewright postrouting ip6 saddr fd00:6::/64 ct status dnat meta l4proto { tcp, udp } oifname . ip6 daddr . meta l4proto . th dport @hairpin masquerade',
    ),
  );
  t.notOk(
    six.some((r) => r.includes('127.0.0.0/8') || r.includes('10.6.0.0/24')),
    'no IPv4 rule in the ip6 table',
  );
  t.notOk(
    chainRules(rules, 4).some((r) => r.includes('fd00:6')),
    'no IPv6 rule in the ip table',
  );
});

t.test('a mapping becomes one row per family the guest has (and names)', async (t) => {
  const v4 = { address: '10.6.0.2', prefix: 24, family: 4 as const };
  const v6 = { address: 'fd00:6::2', prefix: 64, family: 6 as const };
  const rows = (addrs: (typeof v4 | typeof v6)[], p: string) =>
    portRows(addrs, [parsePublish(p)]).map((r) => `${r.hostIp}|${r.ctrIp}|${r.ctrSubnet}`);
  t.same(rows([v4, v6], '8080:80'), ['|10.6.0.2|10.6.0.0/24', '|fd00:6::2|fd00:6::/64']);
  t.same(rows([v4], '8080:80'), ['|10.6.0.2|10.6.0.0/24'], 'an IPv4-only guest: IPv4 only');
  t.same(rows([v6], '8080:80'), ['|fd00:6::2|fd00:6::/64'], 'an IPv6-only guest: IPv6 only');
  t.same(rows([v4, v6], '0.0.0.0:8080:80'), ['|10.6.0.2|10.6.0.0/24']);
  t.same(rows([v4, v6], '[::]:8080:80'), ['|fd00:6::2|fd00:6::/64']);
  t.same(rows([v4, v6], '[2001:db8::1]:8080:80'), ['2001:db8::1|fd00:6::2|fd00:6::/64']);
  t.throws(
    () => rows([v4], '[2001:db8::1]:8080:80'),
    /publishing \[2001:db8::1\]:8080:80\/tcp needs an IPv6 address on the guest interface/,
  );
  t.equal(
    publishedAs({ proto: 'tcp', hostIp: '', hostPort: 8080, hostPortEnd: 8080, ctrIp: 'fd00:6::2', ctrPort: 80 }),
    '[::]:8080:80/tcp',
  );
});

t.test("a store's firewall objects: the host store's names, another state dir's own", async (t) => {
  t.equal(firewallNames('/var/lib/pipewright'), HOST_FIREWALL);
  const a = firewallNames('/tmp/pipewright-test-a');
  t.equal(firewallNames('/tmp/pipewright-test-a').nft4, a.nft4, 'the same dir, the same names');
  t.not(firewallNames('/tmp/pipewright-test-b').nft4, a.nft4, 'another dir, other names');
  t.match(a.nft4, /^ip pipewright_[0-9a-f]{8}$/);
  for (const chain of Object.values(a.chains)) t.ok(chain.length <= 28, `${chain} fits iptables' 28 characters`);
});

t.test("the host's store is found through a symlinked /var/lib/pipewright", async (t) => {
  // Both paths resolved by the caller: the host dir a link to /srv/pipewright, the store there.
  t.equal(firewallNames('/srv/pipewright', '/srv/pipewright'), HOST_FIREWALL);
  t.not(firewallNames('/srv/other', '/srv/pipewright'), HOST_FIREWALL);
});

t.test('nftables: the rules of the ports a change touched give the whole difference', async (t) => {
  // Guests on two bridges, some with several rows to one guest port (shared hairpin and accept elements).
  const row = (i: number, j: number): PortState => ({
    proto: j === 1 ? 'udp' : 'tcp',
    hostIp: j === 2 ? '192.0.2.7' : '',
    hostPort: 20000 + i * 10 + j * 2,
    hostPortEnd: 20000 + i * 10 + j * 2 + (j % 2),
    ctrIp: i % 5 === 4 ? `fd00::${i + 2}` : `10.9.${i >> 8}.${(i & 255) + 2}`,
    ctrSubnet: i % 5 === 4 ? 'fd00::/64' : '10.9.0.0/16',
    ctrPort: 80,
    bridge: i % 2 ? 'br-odd' : 'br-even',
  });
  const bridges: FirewallState['bridges'] = [
    { bridge: 'br-odd', hasGuests: true },
    { bridge: 'br-even', hasGuests: true },
  ];
  // Some changes also add an isolated, masquerading network: chain rules change with the elements.
  const isolated = {
    bridge: 'br-iso',
    hasGuests: true,
    network: { subnet: '10.8.0.0/24', masquerade: true, isolated: true },
  };
  const elements = (rules: Rule[]) => new Set(rules.map((r) => elementOf(r)?.join(' ')).filter(Boolean));
  const minus = (a: Set<unknown>, b: Set<unknown>) => [...a].filter((x) => !b.has(x)).sort();
  const difference = (before: Rule[], after: Rule[]) => ({
    added: minus(elements(after), elements(before)),
    gone: minus(elements(before), elements(after)),
    chains: [4, 6].map((f) => [chainRules(before, f as 4 | 6), chainRules(after, f as 4 | 6)]),
  });
  let seed = 7;
  const random = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
  const fleet = Array.from({ length: 40 }, (_, i) => Array.from({ length: 1 + (i % 3) }, (_, j) => row(i, j))).flat();
  for (let round = 0; round < 300; round++) {
    // A change: some rows go (one of a guest's, or all), a new guest's rows come, a row of a guest
    // changes its host port, a network comes; now and then from nothing published at all.
    const was = round % 25 === 0 ? [] : fleet.filter(() => random(4) > 0);
    const now = was.filter(() => random(10) > 0);
    if (random(2)) now.push(row(40 + random(20), random(3)));
    if (now.length && random(3) === 0) {
      const i = random(now.length);
      now[i] = { ...now[i], hostPort: now[i].hostPort + 5000, hostPortEnd: now[i].hostPortEnd + 5000 };
    }
    const [a, b] = [
      { bridges, ports: was },
      { bridges: random(4) ? bridges : [...bridges, isolated], ports: now },
    ];
    const scope = portsTouched(was, now);
    t.same(difference(desiredRules(a, scope), desiredRules(b, scope)), difference(desiredRules(a), desiredRules(b)));
    if (t.passing() === false) break;
  }
  const many = fleet.slice(0, 30);
  const scope = portsTouched(many, [...many, row(41, 0)]);
  t.same(
    desiredRules({ bridges, ports: many }, scope).filter((r) => r.type === 'dnat'),
    [],
    'the ports no change touched bring no rules of their own',
  );
});
