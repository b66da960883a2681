/**
 * The daemon's three sockets run commands as root: the CLI socket (warm workers), the CNI socket
 * and Docker's plugin socket. Callers weaker than the daemon (another uid, a smaller bounding set,
 * a user namespace of their own) and callers in other mount or network namespaces get nothing
 * done by it: each gets a one-line error or a refusal, and the host's links, rule set and store
 * rows are as before. What their environment carries (NODE_OPTIONS, LD_PRELOAD, PATH,
 * PIPEWRIGHT_*) runs, if at all, in their own processes with their own powers, never with the
 * daemon's: probes they preload record who ran them.
 */
import t, { type Test } from 'tap';
import { execa } from 'execa';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  CLI,
  CNI_PLUGIN,
  cli,
  firewallSnapshot,
  hostLinks,
  isRoot,
  must,
  netns,
  ROOT_REASON,
  startDaemon,
  stateDir,
  uniq,
} from '../helpers/host.js';

const skip = (!isRoot && ROOT_REASON) || (!existsSync('/usr/bin/cc') && 'needs a C compiler for the LD_PRELOAD probe');

/** Appends "<kind> <uid> <CapEff> <user namespace>" of the process it runs in to $PW_PROBE_OUT. */
const PROBE_C = `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void probe(void) {
  const char *out = getenv("PW_PROBE_OUT");
  char line[256], caps[64] = "?", ns[64] = "?";
  FILE *s = fopen("/proc/self/status", "r");
  while (s && fgets(line, sizeof line, s)) if (sscanf(line, "CapEff:\\t%63s", caps) == 1) break;
  if (s) fclose(s);
  ssize_t n = readlink("/proc/self/ns/user", ns, sizeof ns - 1);
  if (n > 0) ns[n] = 0;
  FILE *f = out ? fopen(out, "a") : NULL;
  if (f) { fprintf(f, "ld %d %s %s\\n", (int)getuid(), caps, ns); fclose(f); }
}
`;
const PROBE_JS = `const fs = require('fs');
const caps = /CapEff:\\s*(\\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
fs.appendFileSync(process.env.PW_PROBE_OUT, 'node ' + process.getuid() + ' ' + caps + ' ' + fs.readlinkSync('/proc/self/ns/user') + '\\n');
`;
/** Tools under the names pipewright runs, first in a hostile PATH: each records that it ran. */
const TOOLS = [
  'ip',
  'iptables',
  'iptables-restore',
  'iptables-save',
  'ip6tables-restore',
  'ip6tables-save',
  'nft',
  'nsenter',
  'mount',
  'sysctl',
];

/** The probes, in a directory every user may read; each records into $PW_PROBE_OUT, a file all may write. */
async function probes(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'probe.c'), PROBE_C);
  await must('cc', ['-shared', '-fPIC', '-o', join(dir, 'probe.so'), join(dir, 'probe.c')]);
  writeFileSync(join(dir, 'probe.cjs'), PROBE_JS);
  for (const tool of TOOLS)
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "tool $(id -u) $0" >> "$PW_PROBE_OUT"\nexit 1\n`, { mode: 0o755 });
  let n = 0;
  return {
    dir,
    /** A new record file; what ran so far, one "<kind> <uid> <CapEff> <user namespace>" line each. */
    record() {
      const out = join(dir, `ran${n++}`);
      writeFileSync(out, '');
      chmodSync(out, 0o666);
      return { out, ran: () => readFileSync(out, 'utf8').split('\n').filter(Boolean) };
    },
  };
}

/** What a caller's command may not change: the host's links, its rule set, the daemon's store rows. */
async function hostState(dir: string): Promise<string> {
  const rows = [];
  for (const args of [['pool', 'ls'], ['lease', 'ls'], ['network', 'ls'], ['volume', 'ls'], ['ls']])
    rows.push((await cli(dir, [...args, '--json'])).stdout);
  return [(await hostLinks()).join(' '), await firewallSnapshot(), ...rows].join('\n---\n');
}

/**
 * A POST to a unix socket from a `node -e` client (run as the caller): "<status> <body>", or the
 * connect error's code.
 */
const POST_JS = `const [socketPath, path, body] = process.argv.slice(1);
const req = require('http').request({ socketPath, path, method: 'POST' }, (res) => {
  let s = ''; res.on('data', (d) => (s += d)).on('end', () => console.log(res.statusCode + ' ' + s));
});
req.on('error', (e) => console.log(e.code)); req.end(body);`;

interface Caller {
  label: string;
  /** The command line prefix that makes a process this caller. */
  as: string[];
  /** Weaker than the daemon (its own process fails for lack of powers), or as strong in other namespaces. */
  weaker: boolean;
  /** What the daemon's refusal names (undefined: it cannot even connect). */
  refusal?: RegExp;
}

t.test(
  'callers weaker than the daemon, or in other namespaces, get nothing done through its sockets',
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const [plugin, cni, cliSocket] = [join(dir, 'plugin.sock'), join(dir, 'cni.sock'), join(dir, 'cli.sock')];
    const daemon = await startDaemon(t, dir, ['--socket', plugin, '--cni-socket', cni, '--cli-socket', cliSocket]);
    for (const s of [plugin, cni, cliSocket]) {
      const st = statSync(s);
      t.equal(`${st.uid} ${(st.mode & 0o777).toString(8)}`, '0 600', `${s.slice(dir.length + 1)}: root's alone`);
    }
    const probe = await probes(t);
    const daemonCaps = /CapEff:\s*(\S+)/.exec(readFileSync(`/proc/${daemon.proc.pid}/status`, 'utf8'))![1];
    const daemonPowers = `0 ${daemonCaps} ${(await must('readlink', [`/proc/${daemon.proc.pid}/ns/user`])).trim()}`;
    const other = await netns(t);
    const callers: Caller[] = [
      { label: 'an unprivileged user (runuser -u nobody)', as: ['runuser', '-u', 'nobody', '--'], weaker: true },
      {
        label: 'root without CAP_NET_ADMIN and CAP_SYS_ADMIN (setpriv --bounding-set)',
        as: ['setpriv', '--bounding-set', '-net_admin,-sys_admin', '--'],
        weaker: true,
        refusal: /fewer capabilities/,
      },
      {
        label: 'root of a user namespace of its own (unshare -U -r)',
        as: ['unshare', '-U', '-r', '--'],
        weaker: true,
        refusal: /another user namespace/,
      },
      {
        label: 'root in another mount namespace (unshare -m)',
        as: ['unshare', '-m', '--propagation', 'private', '--'],
        weaker: false,
        refusal: /another mnt namespace/,
      },
      {
        label: 'root in another network namespace (nsenter --net)',
        as: ['nsenter', `--net=/run/netns/${other}`, '--'],
        weaker: false,
        refusal: /another net namespace/,
      },
    ];
    // Every Node a caller starts runs the NODE_OPTIONS probe; every dynamically linked program, the
    // LD_PRELOAD one; tools looked up in PATH are the fake ones. A caller as strong as the daemon in
    // other namespaces would do real work in its own process: NODE_OPTIONS there stops any Node.
    const hostile = (c: Caller, out: string) => [
      `NODE_OPTIONS=${c.weaker ? `--require=${join(probe.dir, 'probe.cjs')}` : '--no-such-node-option'}`,
      `LD_PRELOAD=${join(probe.dir, 'probe.so')}`,
      `PATH=${probe.dir}:/usr/local/bin:/usr/bin:/bin`,
      `PW_PROBE_OUT=${out}`,
      `PIPEWRIGHT_STATE_DIR=${dir}`,
      `PIPEWRIGHT_CLI_SOCKET=${cliSocket}`,
      `PIPEWRIGHT_CNI_SOCKET=${cni}`,
    ];
    const guest = await netns(t);
    const before = await hostState(dir);
    const netconf = JSON.stringify({
      cniVersion: '1.1.0',
      name: uniq('net'),
      type: 'pipewright',
      bridge: uniq('b'),
      subnet: '10.252.9.0/24',
      stateDir: dir,
    });
    const cniEnv = [
      'CNI_COMMAND=ADD',
      'CNI_CONTAINERID=attacker',
      `CNI_NETNS=/run/netns/${guest}`,
      'CNI_IFNAME=eth0',
      'CNI_PATH=/usr/lib/cni',
    ];
    const dockerCalls: [string, object][] = [
      ['/IpamDriver.RequestPool', { AddressSpace: 'pipewright', Pool: '10.252.8.0/24', Options: {} }],
      [
        '/NetworkDriver.CreateNetwork',
        { NetworkID: 'f'.repeat(64), IPv4Data: [{ Pool: '10.252.8.0/24', Gateway: '10.252.8.1/24' }], Options: {} },
      ],
      ['/VolumeDriver.Create', { Name: uniq('v'), Opts: {} }],
    ];

    for (const c of callers) {
      await t.test(c.label, async (t) => {
        const record = probe.record();
        const env = hostile(c, record.out);
        for (const args of [
          ['pool', 'create', uniq('p'), '10.252.7.0/24'],
          ['attach', uniq('br'), guest, '10.252.7.2/24'],
        ]) {
          const r = await execa(c.as[0], [...c.as.slice(1), 'env', ...env, CLI, ...args], { reject: false });
          t.not(r.exitCode, 0, `${args[0]}: refused`);
          t.equal(r.stderr.trim().split('\n').length, 1, `${args[0]}: one line (${r.stderr.trim()})`);
          t.match(
            r.stderr,
            c.weaker
              ? /needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN in the host's user namespace/
              : /no-such-node-option/,
          );
        }
        const added = await execa(c.as[0], [...c.as.slice(1), 'env', ...env, ...cniEnv, CNI_PLUGIN], {
          input: netconf,
          reject: false,
        });
        t.not(added.exitCode, 0, 'CNI ADD: refused');
        if (c.weaker)
          t.match(JSON.parse(added.stdout), { code: Number, msg: /needs root/ }, 'CNI ADD: a CNI error saying why');
        // The plugin's client is Node: one that starts, for a caller whose NODE_OPTIONS stops Node.
        const client = c.weaker ? [] : ['NODE_OPTIONS='];
        for (const [path, body] of dockerCalls) {
          const r = await execa(
            c.as[0],
            [
              ...c.as.slice(1),
              'env',
              ...env,
              ...client,
              process.execPath,
              '-e',
              POST_JS,
              plugin,
              path,
              JSON.stringify(body),
            ],
            {
              reject: false,
            },
          );
          if (c.refusal)
            t.match(
              r.stdout,
              new RegExp(`^403 \\{"Err":"pipewright refuses this caller: .*${c.refusal.source}`),
              `${path}: refused`,
            );
          else t.match(r.stdout, /^EACCES$/, `${path}: cannot even connect`);
        }
        t.equal(await hostState(dir), before, 'links, rule set and store rows as before');
        const ran = record.ran();
        t.same(
          ran.filter((l) => l.startsWith('tool ')),
          [],
          'no tool was taken from its PATH',
        );
        t.ok(
          ran.some((l) => l.startsWith('ld ')),
          'the LD_PRELOAD probe ran, in its own programs',
        );
        if (!c.weaker) return;
        t.ok(
          ran.some((l) => l.startsWith('node ')),
          'the NODE_OPTIONS probe ran, in its own Node',
        );
        t.same(
          ran.filter((l) => l.split(' ').slice(1).join(' ') === daemonPowers),
          [],
          "nothing its environment brought ran with the daemon's powers (root, its capabilities, its user namespace)",
        );
      });
    }

    const lines = daemon.lines().map((l) => JSON.parse(l));
    const refused = lines.filter((l) => /refused$/.test(l.method ?? '')).map((l) => l.err);
    for (const c of callers.filter((x) => x.refusal)) {
      t.ok(
        refused.filter((r) => c.refusal!.test(r)).length >= dockerCalls.length + 1,
        `the daemon logged why it refused ${c.label} (plugin and CNI sockets)`,
      );
    }
    t.ok(
      lines.some((l) => /another (user|mnt|net) namespace.*|CapBnd/.test(l.declined ?? '')),
      'warm workers declined the callers that could connect',
    );
  },
);

t.test(
  "a caller as strong as the daemon is served, and its PATH does not choose pipewright's tools",
  { skip },
  async (t) => {
    const dir = stateDir(t);
    const cliSocket = join(dir, 'cli.sock');
    await startDaemon(t, dir, ['--socket', join(dir, 'plugin.sock'), '--cni-socket', '', '--cli-socket', cliSocket]);
    const record = (await probes(t)).record();
    const guest = await netns(t);
    const br = uniq('br');
    t.teardown(() => execa('ip', ['link', 'del', br], { reject: false }));
    const env = {
      PIPEWRIGHT_STATE_DIR: dir,
      PIPEWRIGHT_CLI_SOCKET: cliSocket,
      PATH: `${dirname(record.out)}:${process.env.PATH}`,
      PW_PROBE_OUT: record.out,
      NODE_OPTIONS: '--no-such-node-option',
    };
    const r = await execa(CLI, ['attach', br, guest, '10.252.6.2/24'], { env, reject: false });
    t.equal(r.exitCode, 0, `run by a warm worker (no Node could start under its NODE_OPTIONS): ${r.stderr}`);
    t.same(record.ran(), [], 'none of the fake tools first in its PATH ran');
    t.equal((await cli(dir, ['detach', guest])).exitCode, 0);
  },
);
