/**
 * A command's start-up without a daemon (dist/bin/pipewright starts Node from the CLI's snapshot):
 * what a SQLite-store command does not use stays out of it (etcd3 with gRPC and protobufjs, ajv,
 * yaml), seen in the files the process opens; and a guard on its speed, as ratios to `node -e 0`
 * taken round by round (a machine's speed varies 2x between days, a ratio much less): the
 * snapshot is no slower than the plain bundle, and `--version` costs at most 1.5x `node -e 0`.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CLI, isRoot, ROOT_REASON, stateDir } from '../helpers/host.js';
import { SNAPSHOT_FLAGS } from '../../src/util/snapshot-flags.js';

const dist = (p: string) => fileURLToPath(new URL(`../../dist/${p}`, import.meta.url));
const BLOB = dist('pipewright.blob');
const BUNDLE = dist('bundle/pipewright.mjs');
const hasStrace = spawnSync('strace', ['-V']).status === 0;
/**
 * A command as a user runs it: the test's environment without the test runner's (tap gives every
 * Node it sees started its loaders through NODE_OPTIONS, put back into any environment given, so
 * env -i starts the command with only the variables named here) and without NODE_EXTRA_CA_CERTS,
 * which a user's host rarely sets and which makes every Node start parse a CA bundle (as the bench).
 */
function plain(file: string, args: string[], env: Record<string, string>): [string, string[]] {
  const own = Object.entries(process.env).filter(
    ([k]) => !/^(NODE_OPTIONS|NODE_EXTRA_CA_CERTS|TAP|_TAPJS_|TS_NODE_)/.test(k),
  );
  const vars = [...own, ...Object.entries(env)].map(([k, v]) => `${k}=${v}`);
  return ['/usr/bin/env', ['-i', ...vars, file, ...args]];
}

/** The files a command opened (strace), and how it ended. */
function openedBy(args: string[], env: Record<string, string>): { files: string[]; status: number | null } {
  const r = spawnSync(
    'strace',
    ['-f', '-qq', '-e', 'trace=openat,open', '-e', 'signal=none', ...plain(CLI, args, env).flat()],
    { encoding: 'utf8' },
  );
  return { files: [...r.stderr.matchAll(/open(?:at)?\([^"]*"([^"]+)"/g)].map((m) => m[1]!), status: r.status };
}

const APART = /etcd3\.cjs|node_modules\/(etcd3|@grpc|protobufjs|ajv|yaml)\//;

t.test("the snapshot's script holds no etcd3, gRPC or protobufjs; they are bundled apart", async (t) => {
  const script = readFileSync(dist('snapshot/pipewright.cjs'), 'utf8');
  t.notMatch(script, /node_modules\/(@grpc\/grpc-js|protobufjs|etcd3)\//, 'none of their modules in the snapshot');
  t.match(readFileSync(dist('snapshot/etcd3.cjs'), 'utf8'), /node_modules\/@grpc\/grpc-js\//, 'they are in etcd3.cjs');
});

t.test(
  'a SQLite-store command opens none of etcd3, gRPC, protobufjs, ajv or yaml; an etcd one opens etcd3 with its code cache',
  { skip: (!hasStrace && 'needs strace') || (!isRoot && ROOT_REASON) },
  async (t) => {
    const env = { PIPEWRIGHT_STATE_DIR: stateDir(t), PIPEWRIGHT_STORE: '' };
    for (const args of [
      ['--version'],
      ['ls'],
      ['pool', 'ls'],
      ['pool', 'create', 'st', '10.251.0.0/24'],
      ['inspect', 'netns:nosuch'],
    ]) {
      const { files } = openedBy(args, env);
      t.ok(
        files.some((f) => f.endsWith('better_sqlite3.node')) || args[0] === '--version',
        `${args.join(' ')}: the process was traced`,
      );
      t.same(
        files.filter((f) => APART.test(f)),
        [],
        `${args.join(' ')}: nothing of them opened`,
      );
    }
    // The control: a store on etcd (none listens on port 1: the command fails after loading the client).
    const etcd = openedBy(['--store', 'etcd://127.0.0.1:1', 'pool', 'ls'], {
      ...env,
      PIPEWRIGHT_ETCD_TIMEOUT_MS: '500',
    });
    t.not(etcd.status, 0, 'the etcd store is unreachable');
    t.ok(
      etcd.files.some((f) => f.endsWith('/dist/snapshot/etcd3.cjs')),
      'an etcd-store command loads etcd3.cjs',
    );
    t.ok(
      etcd.files.some((f) => f.endsWith('/dist/snapshot/etcd3.cjs.cache')),
      'with its code cache',
    );
  },
);

t.test("etcd3's code cache is taken by a process started with the snapshot's V8 flags", async (t) => {
  // A cache made under other flags is refused, silently: an etcd store would compile etcd3 at each start.
  const cacheTaken = (flags: readonly string[]) => {
    const code = `const { compile } = await import(${JSON.stringify(dist('cli/code-cache.js'))});
      const file = ${JSON.stringify(dist('snapshot/etcd3.cjs'))};
      const { readFileSync } = await import('node:fs');
      console.log(compile(file, readFileSync(file + '.cache')).script.cachedDataRejected ? 'refused' : 'taken');`;
    const r = spawnSync(...plain(process.execPath, [...flags, '--input-type=module', '-e', code], {}), {
      encoding: 'utf8',
    });
    t.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  t.equal(cacheTaken(SNAPSHOT_FLAGS), 'taken', 'under the snapshot flags: taken');
  t.equal(
    cacheTaken([]),
    SNAPSHOT_FLAGS.length ? 'refused' : 'taken',
    'under none: refused (the flags are what V8 checks)',
  );
});

type Samples = Record<string, number[]>;

/** `rounds` runs of each command, sampled in turn: a round's commands see the same machine. */
function sample(commands: Record<string, [string, string[]]>, rounds: number, env: Record<string, string>): Samples {
  const times: Samples = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
  for (let i = 0; i < rounds; i++) {
    for (const [name, [file, args]] of Object.entries(commands)) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(...plain(file, args, env), { stdio: 'ignore' });
      times[name]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}`);
    }
  }
  return times;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** The median of a/b taken round by round: a burst of load on the machine hits both of a round. */
const ratio = (s: Samples, a: string, b: string) => median(s[a]!.map((x, i) => x / s[b]![i]!));

t.test('start-up guard: the snapshot is no slower than the bundle, --version at most 1.5x node -e 0', async (t) => {
  const env = { PIPEWRIGHT_STATE_DIR: stateDir(t) };
  const commands: Record<string, [string, string[]]> = {
    floor: [process.execPath, ['-e', '0']],
    version: [CLI, ['--version']],
    snapshot: [process.execPath, [...SNAPSHOT_FLAGS, '--snapshot-blob', BLOB, BUNDLE, '--version']],
    bundle: [process.execPath, [BUNDLE, '--version']],
  };
  const verdict = (s: Samples) => ({
    snapshotToBundle: ratio(s, 'snapshot', 'bundle'),
    versionToFloor: ratio(s, 'version', 'floor'),
  });
  const failing = (v: ReturnType<typeof verdict>) => v.snapshotToBundle > 1 || v.versionToFloor > 1.5;
  // A burst of noise can still tip a sample of 15: a failing check is measured once more, longer.
  let s = sample(commands, 15, env);
  let v = verdict(s);
  if (failing(v)) {
    t.comment(`first measure: ${JSON.stringify(v)}; measuring again`);
    s = sample(commands, 25, env);
    v = verdict(s);
  }
  const ms = (k: string) => `${median(s[k]!).toFixed(1)} ms`;
  t.comment(
    `medians: node -e 0 ${ms('floor')}, --version ${ms('version')}, snapshot ${ms('snapshot')}, bundle ${ms('bundle')}`,
  );
  t.ok(
    v.snapshotToBundle <= 1,
    `the snapshot takes ${v.snapshotToBundle.toFixed(2)}x the plain bundle's time (at most 1x)`,
  );
  t.ok(v.versionToFloor <= 1.5, `--version takes ${v.versionToFloor.toFixed(2)}x node -e 0 (at most 1.5x)`);
});
