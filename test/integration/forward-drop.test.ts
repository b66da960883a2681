/**
 * Default-drop hosts: another program's nftables chain on the forward hook with policy drop
 * (in a stand-in host, testHost). Without a way through, `network create` and `attach` refuse in
 * one line naming the table and chain, before anything changes; with the admin's documented rule
 * there (pipewright's accept mark, or the bridge's name), guests' forwarded traffic flows. An ip6
 * table's chain counts as well, and a rule that names the bridge without accepting it does not.
 */
import t from 'tap';
import { askPeer, isRoot, netns, peerServer, ping, ROOT_REASON, stateDir, testHost } from '../helpers/host.js';

const DROP_CHAIN = [
  'add table inet filter',
  'add chain inet filter forward { type filter hook forward priority 0; policy drop; }',
  'add rule inet filter forward ct state established,related accept',
];
const REFUSAL =
  /^pipewright: nftables chain inet filter forward \(policy drop\) would drop (\S+)'s forwarded traffic; let it through there first: nft insert rule inet filter forward .+$/;

t.test(
  'a drop chain with no way through: refused before anything changes',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    for (const cmd of DROP_CHAIN) await host.run('nft', [cmd]);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', 'nftables', ...args]);
    t.equal((await pw('pool', 'create', 'dp', '10.247.71.0/24')).exitCode, 0);
    const [firewall, links] = [await host.firewall(), await host.links()];

    const create = await pw('network', 'create', 'dn', '--bridge', 'brd', '--pool', 'dp');
    t.equal(create.exitCode, 1);
    t.match(create.stderr.trim(), REFUSAL, 'one line naming the table and chain');
    t.notMatch(create.stderr.trim(), /\n/);
    t.equal(await host.firewall(), firewall, 'the rule set is as it was');

    // A bridge of the user's own with an address, a guest publishing a port on it.
    await host.run('ip', ['link', 'add', 'bru', 'type', 'bridge']);
    await host.run('ip', ['address', 'add', '10.247.72.1/24', 'dev', 'bru']);
    await host.run('ip', ['link', 'set', 'bru', 'up']);
    const [firewall2, links2] = [await host.firewall(), await host.links()];
    const g = await netns(t);
    const attach = await pw('attach', 'bru', g, '10.247.72.2/24@10.247.72.1', '-p', '18571:8080');
    t.equal(attach.exitCode, 1);
    t.match(attach.stderr.trim(), REFUSAL);
    t.match(attach.stderr, /bru's forwarded traffic/);

    t.same(JSON.parse((await pw('network', 'ls', '--json')).stdout), [], 'no network recorded');
    t.same(JSON.parse((await pw('ls', '--json')).stdout), [], 'no attachment recorded');
    t.equal(await host.firewall(), firewall2, 'the rule set is as it was after both refusals');
    t.same(await host.links(), links2, 'no link was made');
    t.notOk(links.includes('brd'), 'no bridge brd');
  },
);

t.test(
  'an ip6 table that drops: a rule naming the bridge is no way through until it accepts',
  { skip: !isRoot && ROOT_REASON },
  async (t) => {
    const host = await testHost(t);
    for (const cmd of [
      'add table ip6 six',
      'add chain ip6 six forward { type filter hook forward priority 0; policy drop; }',
      'add rule ip6 six forward iifname "brs" counter',
    ])
      await host.run('nft', [cmd]);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', 'nftables', ...args]);
    t.equal((await pw('pool', 'create', 'sp', '10.247.75.0/24')).exitCode, 0);
    const [firewall, links] = [await host.firewall(), await host.links()];
    const create = () => pw('network', 'create', 'sn', '--bridge', 'brs', '--pool', 'sp');
    const refused = await create();
    t.equal(refused.exitCode, 1);
    t.match(
      refused.stderr.trim(),
      /^pipewright: nftables chain ip6 six forward \(policy drop\) would drop brs's forwarded traffic; /,
    );
    t.equal(await host.firewall(), firewall, 'the rule set is as it was');
    t.same(await host.links(), links, 'no bridge made');

    await host.run('nft', ['add rule ip6 six forward iifname "brs" accept']);
    const made = await create();
    t.equal(made.exitCode, 0, made.stderr);
    t.equal((await pw('network', 'rm', 'sn')).exitCode, 0);
  },
);

for (const [firewall, wayThrough] of [
  ['nftables', (_br: string[]) => ['insert rule inet filter forward meta mark and 0x100000 == 0x100000 accept']],
  [
    'iptables',
    (brs: string[]) =>
      brs.flatMap((b) => [
        `insert rule inet filter forward iifname "${b}" accept`,
        `insert rule inet filter forward oifname "${b}" accept`,
      ]),
  ],
] as const) {
  t.test(`the admin's way through (${firewall}): traffic flows`, { skip: !isRoot && ROOT_REASON }, async (t) => {
    const host = await testHost(t);
    for (const cmd of [...DROP_CHAIN, ...wayThrough(['bra', 'brb'])]) await host.run('nft', [cmd]);
    await host.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const dir = stateDir(t);
    const pw = (...args: string[]) => host.cli(dir, ['--firewall', firewall, ...args]);
    const [srv, client] = [await netns(t), await netns(t)];
    for (const args of [
      ['pool', 'create', 'fa', '10.247.73.0/24'],
      ['pool', 'create', 'fb', '10.247.74.0/24'],
      ['network', 'create', 'na', '--bridge', 'bra', '--pool', 'fa'],
      ['network', 'create', 'nb', '--bridge', 'brb', '--pool', 'fb', '--masquerade'],
      ['attach', 'bra', srv, 'pool:fa', '-p', '18573:8080'],
      ['attach', 'brb', client, 'pool:fb'],
    ]) {
      const r = await pw(...args);
      t.equal(r.exitCode, 0, `${args.join(' ')} ${r.stderr}`);
    }
    t.teardown(() => pw('detach', srv).then(() => pw('detach', client)));
    t.ok(await ping(client, '10.247.73.2'), 'the client pings the guest on the other network');
    await peerServer(t, srv, 'tcp', 8080);
    // Masqueraded on its way out of the client's network: the guest sees its gateway.
    t.equal(await askPeer(client, 'tcp', '10.247.74.1', 18573), '10.247.73.1', 'the published port answers');
    // Without the admin's rule the chain drops it: the rule above is what let it through.
    await host.run('nft', ['flush chain inet filter forward']);
    t.notOk(await ping(client, '10.247.73.2'), 'with the way through gone, the ping is dropped');
  });
}
