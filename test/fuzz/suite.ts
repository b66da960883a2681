/**
 * The fuzz suite (`npm run fuzz`, root): generated bad inputs for every command, pipework's argv,
 * apply files and the environment. For each: exit 1 or 2, one line on stderr, no stack trace, and
 * the host unchanged (links, addresses, routes, iptables / ip6tables / nft rule sets, mounts and
 * the store's rows, compared before and after). FUZZ_N inputs (default 500), FUZZ_SEED for the order.
 */
import t from 'tap';
import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Store } from '../../src/db/store.js';
import { BAD_RATES } from '../helpers/bad-rates.js';
import {
  CLI,
  cli,
  firewallSnapshot,
  PIPEWORK_BIN,
  isRoot,
  must,
  netns,
  ROOT_REASON,
  sh,
  stateDir,
  uniq,
} from '../helpers/host.js';

const N = Number(process.env.FUZZ_N ?? 500);
let seed = Number(process.env.FUZZ_SEED ?? 20261123);
/** A small seeded generator: the same FUZZ_SEED gives the same inputs. */
const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const SPECIAL = [
  ' ',
  '\t',
  '\n',
  '"',
  "'",
  ';',
  '{',
  '}',
  '+',
  '*',
  '$',
  '`',
  '\\',
  '/',
  ':',
  ',',
  '=',
  '@',
  '#',
  '\x7f',
  '\x01',
  'é',
  '🙂',
];
const badName = () =>
  pick([...SPECIAL.map((c) => `br${c}x`), '', '.', '..', 'a'.repeat(16), 'é'.repeat(8), '-x', '--help=x']);
const badCidr = () =>
  pick([
    '10.0.0.1/33',
    '10.0.0.1/-1',
    '10.0.0.256/24',
    '::1/129',
    '10.0.0.0/24',
    '10.0.0.255/24',
    '10.0.0.5/24@10.1.0.1',
    'fe80::1/64@1.2.3.4',
    'a.b.c.d/1',
    '10.0.0.5',
    '10.0.0.5/24@@x',
    '10.0.0.5/24@10.0.0.5',
    '1.2.3.4/8/8',
    `10.0.0.5/24${pick(SPECIAL)}`,
  ]);
const badMac = () =>
  pick([
    '01:00:5e:00:00:01',
    '00:00:00:00:00:00',
    'zz:00:00:00:00:01',
    '02:00:00:00:00',
    '02:00:00:00:00:00:00',
    '02-00-00-00-00-01',
    'U',
    `02:00:00:00:00:0${pick(SPECIAL)}`,
  ]);
const badPort = () =>
  pick([
    '0:80',
    '65536:80',
    '80',
    '80:80/sctp',
    '1-2:1-3',
    'x:80',
    '::80',
    '1.2.3.4.5:80:80',
    '[::1]:80:80',
    '[::1]80:80',
    '[2001:db8::1:80:80',
    '2001:db8::1:80:80',
    '[]:80:80',
    '[1.2.3.4]:80:80',
    '[fe80::1%eth0]:80:80',
    '[::ffff:10.0.0.1]:80:80',
    '[ff02::1]:80:80',
    `[2001:db8::1${pick(SPECIAL)}]:80:80`,
    '[2001:db8::1]:80',
    '80:0',
    '9-8:9-8',
    '80:80/tcp/udp',
    `80:80${pick(SPECIAL)}`,
  ]);
const badSubnet = () =>
  pick(['10.0.0.1/33', '10.0.0.0/31', '::/127', 'x', '10.0.0.0', '10.253.0.0/24', '300.0.0.0/8', '10.0.0.0/8/8', '']);
const badRoute = () =>
  pick([
    'default',
    '10.0.0.0/33',
    '1.2.3.4@',
    'default@x',
    '10.0.0.0/8@fe80::1',
    'x/8',
    '10.0.0.0/8@1.2.3.4@5.6.7.8',
    '',
    '10.0.0.0/8@',
  ]);
const badRate = () => pick([...BAD_RATES, '/', '10', `10mbit${pick(SPECIAL)}`]);
const badMetric = () => pick(['0', '-1', '4294967296', '1e3', 'x', '1.5', '', '0x10']);
const badMtu = () => pick(['0', '67', '65536', 'abc', '1e3', '-1', '1500.5', '']);
const badPath = () =>
  pick([
    '../etc',
    'relative',
    '/',
    '/proc/x',
    '/etc,src=/',
    'a:b:c:d',
    '/x\n',
    '/tmp/x:/data:rw,foo',
    '',
    ':/data',
    'data:',
    'data:/data:bogus',
    'bad name:/data',
    'data:/../x',
  ]);
const badGuest = () =>
  pick([
    'docker:',
    'pid:abc',
    'pid:0',
    'pid:-5',
    'netns:../x',
    'netns:',
    '/nonexistent/netns',
    'netns:no-such-ns',
    'pid:99999999',
    '',
  ]);
const badVolume = () => pick([...SPECIAL.map((c) => `v${c}x`), '', '-v', 'a', '.hidden', 'x'.repeat(300)]);

interface Fixture {
  dir: string;
  guest: string;
  bridge: string;
  nic: string;
}

/** One bad input: argv for the CLI (or the pipework bin), and the environment. */
type Input = { args: string[]; env?: Record<string, string>; bin?: 'pipework' };

function generators(f: Fixture): (() => Input)[] {
  const attach = (extra: string[], hostIf = f.bridge, addr = '10.253.0.9/24', guest = f.guest): Input => ({
    args: ['attach', hostIf, guest, addr, ...extra],
  });
  return [
    () => attach([], badName()),
    () => attach([], f.bridge, badCidr()),
    () => attach([], f.bridge, '10.253.0.9/24', badGuest()),
    () => attach(['--mac', badMac()]),
    () => attach(['--mtu', badMtu()]),
    () => attach(['-p', badPort()]),
    // A well-formed IPv6 mapping on a guest with no IPv6 address: refused before the host changes.
    () => attach(['-p', pick(['[2001:db8::5]:8080:80', '[::]:8080:80/udp'])]),
    () => attach(['--route', badRoute()]),
    () => attach(['--rate', badRate()]),
    () => attach(['--metric', badMetric()]),
    () => attach(['--rate', '10mbit'], pick([f.nic, 'none'])),
    () => attach(['--sbr'], f.bridge, 'dhcp'),
    () => attach(['-i', badName()]),
    () => attach(['-l', badName()]),
    () => attach(['--macvlan-mode', pick(['loud', '', 'BRIDGE', 'bridge;x'])], f.nic),
    () => attach(['--host-shim', badCidr()], f.nic),
    () => attach(['--host-shim', '10.253.1.1/24'], f.bridge),
    () => attach([], f.bridge, pick(['pool:', 'pool:no-such', `pool:${badName()}`, 'dhcp', 'dhcp dhcp'])),
    () => attach([], `${f.nic}.${pick(['0', '4095', '70000'])}`),
    () =>
      attach(
        pick([
          ['-p', '8080:80'],
          ['--host-shim', '10.253.1.1/24'],
          ['--vlan', '5'],
          ['-l', 'fzl'],
        ]),
        'none',
      ),
    () => attach([], 'none', 'dhcp'),
    () => ({ args: ['network', 'create', 'fzn', '--bridge', 'none', '--pool', 'fz'] }),
    () => ({ args: ['attach', f.bridge, f.guest, 'dhcp', '10.253.0.9/24'] }),
    () => ({ args: ['detach', badGuest()] }),
    () => ({ args: ['inspect', badGuest()] }),
    () => ({ args: ['pool', 'create', pick([badName(), 'fz2']), badSubnet()] }),
    () => ({
      args: [
        'pool',
        'create',
        'fz3',
        '10.254.0.0/24',
        pick(['--range', '--exclude', '--gateway']),
        pick([badCidr(), '10.254.0.9-10.254.0.1', '10.9.9.9', 'x-y']),
      ],
    }),
    () => ({ args: ['pool', 'create', 'fz', '10.253.0.0/25'] }),
    () => ({
      args: [
        'lease',
        'reserve',
        'fz',
        pick(['10.9.9.9', '10.253.0.0', '10.253.0.1', 'x', '10.253.0.300']),
        '--owner',
        'o',
      ],
    }),
    () => ({ args: ['lease', 'release', pick(['fz', 'no-such']), pick(['10.253.0.77', 'x'])] }),
    () => ({ args: ['pool', 'rm', pick(['no-such', badName()])] }),
    () => ({ args: ['network', 'create', pick([badName(), 'fzn']), '--bridge', badName(), '--pool', 'fz'] }),
    () => ({ args: ['network', 'create', 'fzn', '--bridge', 'fzbr', '--pool', pick(['no-such', badName()])] }),
    () => ({ args: ['network', 'rm', pick(['no-such', badName()])] }),
    () => ({ args: ['volume', 'create', badVolume()] }),
    () => ({
      args: [
        'volume',
        'create',
        'fzv',
        '--opt',
        pick([
          'type=ext9',
          'type=none,o=bind',
          'type=none,o=bind,device=relative',
          'size',
          'bogus=1',
          'type=none,o=bind,device=/proc',
        ]),
      ],
    }),
    () => ({ args: ['volume', 'create', 'fzv', '--size', pick(['1', '0', '1Q', 'big', '-1G', '512k', '1.5G'])] }),
    () => ({ args: ['volume', pick(['rm', 'inspect', 'path']), badVolume()] }),
    () => ({ args: ['mount', pick([f.guest, badGuest()]), badPath()] }),
    () => ({ args: ['unmount', f.guest, pick(['relative', '/', '', '/../x'])] }),
    () => ({ args: [pick(['route', 'rule']), badGuest(), 'add', '10.0.0.0/8', 'via', '10.253.0.1'] }),
    () => ({ args: ['ports', badGuest()] }),
    () => ({
      args: [
        'daemon',
        pick(['--socket', '--log-format', '--cli-workers']),
        pick(['relative.sock', '/tmp/a\nb.sock', 'xml', '', `/tmp/${pick(SPECIAL)}\u0007`]),
      ],
    }),
    () => ({
      args: [
        'run',
        pick(['--network', '-p', '-v']),
        pick([badName(), badPort(), badPath()]),
        '--',
        '--name',
        uniq('fz'),
        'no-such-image',
      ],
    }),
    () => ({ args: ['run', '--', '--net', 'host', 'img'] }),
    () => ({ args: [pick(['bogus', 'atach', '--bogus', 'lease frobnicate', 'pool frobnicate'])] }),
    () => ({ args: ['attach'] }),
    () => ({ args: ['ls'], env: { PIPEWRIGHT_FIREWALL: pick(['bogus', 'IPTABLES', '']) || 'x' } }),
    () => ({
      args: ['ls'],
      env: {
        PIPEWRIGHT_STORE: pick(['etcd://', 'etcd://host', 'mysql://x', 'etcd://a:1:2,', `etcd://h:${pick(SPECIAL)}`]),
      },
    }),
    () => ({ args: ['ls'], env: { PIPEWRIGHT_STATE_DIR: pick(['relative', 'rel/dir', './x']) } }),
    () => ({ args: ['ls'], env: { PIPEWRIGHT_FAULT: pick(['x', 'x:boom', ':crash']) } }),
    () => ({ args: ['firewall', 'sync'], env: { PIPEWRIGHT_FIREWALL: 'pf' } }),
    () => ({
      bin: 'pipework',
      args: pick([
        [f.bridge],
        [f.bridge, f.guest],
        [f.bridge, f.guest, badCidr()],
        ['mac:zz', f.guest, '10.253.0.9/24'],
        [f.bridge, '-a', '5', f.guest, '10.253.0.9/24'],
        [f.bridge, f.guest, 'dhcp:-x'],
        ['--wait'],
        [f.bridge, f.guest, '10.253.0.9/24', badMac()],
        [`${f.nic}`, f.guest, '10.253.0.9/24@5'],
        [badName(), f.guest, '10.253.0.9/24'],
        [f.bridge, f.guest, '10.253.0.9/24', '@70'],
        [f.nic, f.guest, '10.253.0.9/24', pick(['@0', '@4095', '02:00:00:00:00:01@x', '@'])],
      ]),
    }),
    () => {
      const file = join(f.dir, `fuzz-${Math.floor(rand() * 1e9)}.yaml`);
      writeFileSync(
        file,
        pick([
          'pools: [',
          'pools: [{ name: p, subnet: 10.253.9.0/33 }]',
          `networks: [{ name: n, bridge: "${badName()}", pool: fz }]`,
          'containers: [{ container: no-such, interfaces: [{ on: br0, addresses: [x] }] }]',
          `containers: [{ container: no-such, interfaces: [{ on: br0, addresses: [10.253.0.9/24], metric: ${pick(['0', '-1', '"x"', '1.5'])} }] }]`,
          `containers: [{ container: no-such, interfaces: [{ on: br0, addresses: [10.253.0.9/24], rate: ${pick(['1', '[]', '{}'])} }] }]`,
          'volumes: [{ name: "bad name" }]',
          `containers: [{ container: c, interfaces: [{ on: br0, addresses: [10.253.0.9/24], publish: ["${badPort()}"] }] }]`,
          'unknown: 1',
          'pools: [{ name: p, subnet: 10.253.9.0/24, extra: 1 }]',
          '\u0000',
        ]),
      );
      return { args: ['apply', '-f', file, pick(['--dry-run', '--prune', '--json'])] };
    },
    () => ({ args: ['apply', '-f', pick(['/nonexistent.yaml', '/proc', ''])] }),
  ];
}

/** Everything an input could have changed, as one comparable text. */
async function hostState(dir: string): Promise<string> {
  const store = Store.open(dir);
  const rows = ['attachments', 'leases', 'pools', 'networks', 'ports', 'volumes', 'mounts', 'host_links']
    .map((table) => `${table}=${JSON.stringify(store.db.prepare(`SELECT * FROM ${table}`).all())}`)
    .join('\n');
  store.close();
  const [addr, route, route6] = await Promise.all([
    must('ip', ['-j', 'address']),
    must('ip', ['-j', 'route']),
    must('ip', ['-j', '-6', 'route']),
  ]);
  const clean = (text: string) => text.replace(/"(valid|preferred)_life_time":\d+/g, '');
  return [
    rows,
    clean(addr),
    route,
    route6,
    await firewallSnapshot(),
    readFileSync('/proc/self/mountinfo', 'utf8'),
  ].join('\n---\n');
}

t.test(`${N} bad inputs: each refused in one line, the host unchanged`, { skip: !isRoot && ROOT_REASON }, async (t) => {
  const dir = stateDir(t);
  const guest = await netns(t);
  const bridge = uniq('Q');
  t.teardown(() => sh('ip', ['link', 'del', bridge]));
  const nic = uniq('K');
  await must('ip', ['link', 'add', nic, 'type', 'veth', 'peer', 'name', `${nic}x`]);
  t.teardown(() => sh('ip', ['link', 'del', nic]));
  await cli(dir, ['pool', 'create', 'fz', '10.253.0.0/24']);
  const gens = generators({ dir, guest, bridge, nic });
  const before = await hostState(dir);
  let changed = 0;
  for (let i = 0; i < N; i++) {
    const input = pick(gens)();
    const [bin, args] = input.bin === 'pipework' ? ['node', [PIPEWORK_BIN, ...input.args]] : [CLI, input.args];
    const r = await execa(bin, args, { reject: false, env: { PIPEWRIGHT_STATE_DIR: dir, ...input.env } });
    const what = `${input.bin ?? 'pipewright'} ${JSON.stringify(input.args)}${input.env ? ` ${JSON.stringify(input.env)}` : ''}`;
    const lines = r.stderr.trim().split('\n');
    const ok =
      (r.exitCode === 1 || r.exitCode === 2) &&
      lines.length === 1 &&
      lines[0].length > 0 &&
      !/\n\s+at |Error: .*\n/.test(r.stderr);
    if (!ok) t.fail(`${what}: exit ${r.exitCode}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
    const after = await hostState(dir);
    if (after !== before) {
      changed++;
      t.fail(`${what} changed the host`);
      break;
    }
  }
  t.equal(changed, 0, `${N} inputs tried, ${changed} changed anything`);
  t.comment(`fuzz: ${N} inputs tried, ${changed} changed anything (seed ${process.env.FUZZ_SEED ?? 20261123})`);
});
