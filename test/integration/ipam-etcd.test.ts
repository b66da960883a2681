import t from 'tap';
import { EtcdLeaseBackend } from '../../src/net/ipam/etcd-backend.js';
import { ipamSuite } from '../helpers/ipam-suite.js';
import { makeTlsFiles, stall, startEtcd, startEtcdProcess } from '../helpers/etcd.js';
import { Etcd3 } from 'etcd3';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, stateDir } from '../helpers/host.js';

const endpoint = await startEtcd(t);
ipamSuite(t, async (t) => {
  // One etcd for the file; each test gets its own key space by clearing what the last one left.
  const backend = await EtcdLeaseBackend.connect([`http://${endpoint}`], {});
  for (const p of await backend.listPools()) await backend.removePool(p.name);
  t.teardown(() => backend.close());
  return backend;
});

t.test('a stalled etcd fails a call with an error within its deadline, never hangs it', async (t) => {
  const etcd = await startEtcdProcess(t);
  const dir = stateDir(t);
  const pw = (...args: string[]) => cli(dir, ['--store', `etcd://${etcd.endpoint}`, ...args]);
  t.equal((await pw('pool', 'create', 'st', '10.252.0.0/24')).exitCode, 0);
  await stall(etcd.pid);
  t.teardown(() => process.kill(etcd.pid, 'SIGCONT'));
  const t0 = Date.now();
  const r = await pw('lease', 'reserve', 'st', '--owner', 'x');
  const took = Date.now() - t0;
  process.kill(etcd.pid, 'SIGCONT');
  t.equal(r.exitCode, 1);
  t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr.trim()}`);
  t.ok(took < 20_000, `gave up after ${took} ms`);
  t.equal((await pw('lease', 'reserve', 'st', '--owner', 'x')).exitCode, 0, 'and works again once etcd answers');
});

t.test(
  "a long-lived client (the daemon's) meets a stalled etcd in one line naming it, and goes on once it answers",
  async (t) => {
    const etcd = await startEtcdProcess(t);
    const backend = await EtcdLeaseBackend.connect([`http://${etcd.endpoint}`], { callTimeoutMs: 1000 });
    t.teardown(() => backend.close());
    t.same(await backend.listPools(), []);
    await stall(etcd.pid);
    t.teardown(() => process.kill(etcd.pid, 'SIGCONT'));
    const failed = await backend.listPools().then(
      () => null,
      (err: Error) => err,
    );
    process.kill(etcd.pid, 'SIGCONT');
    const oneLine = new RegExp(`^cannot reach etcd at http://${etcd.endpoint}: [^\\n]+; check that it runs$`);
    t.match(failed?.message, oneLine, `the stalled call fails in one line (${failed ? 'it did' : 'it answered'})`);
    // The client waits a moment before it calls a failed member again: until then, the same line.
    const since = Date.now();
    for (;;) {
      const again = await backend.listPools().catch((err: Error) => err);
      if (Array.isArray(again)) break;
      t.match(again.message, oneLine, 'while the client waits');
      if (Date.now() - since > 15_000) throw again;
      await new Promise((r) => setTimeout(r, 500));
    }
    t.pass(`the same client answers again, ${Date.now() - since} ms after etcd did`);
  },
);

t.test('a production etcd: TLS with a client certificate, a user with a password', async (t) => {
  const files = mkdtempSync(join(tmpdir(), 'pipewright-tls-'));
  t.teardown(() => rmSync(files, { recursive: true, force: true }));
  const tls = makeTlsFiles(files);
  const etcd = await startEtcdProcess(t, tls);
  const dir = stateDir(t);
  const store = ['--store', `etcd://${etcd.endpoint}`];
  const withTls = [...store, '--etcd-ca', tls.ca, '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey];
  const ok = await cli(dir, [...withTls, 'pool', 'create', 'tp', '10.252.8.0/24']);
  t.equal(ok.exitCode, 0, ok.stderr);
  const lease = await cli(dir, [...withTls, 'lease', 'reserve', 'tp', '--owner', 'x', '--json']);
  t.equal(lease.exitCode, 0, lease.stderr);

  // Without the client certificate, or without TLS at all: refused by etcd, one line each.
  for (const args of [
    [...store, '--etcd-ca', tls.ca],
    ['--store', `etcd+http://${etcd.endpoint}`],
  ]) {
    const r = await cli(dir, [...args, 'pool', 'ls']);
    t.equal(r.exitCode, 1, args.join(' '));
    t.match(r.stderr, /^pipewright: cannot reach etcd at /);
    t.equal(r.stderr.trim().split('\n').length, 1);
  }

  // A user: auth switched on through the client's own API (as etcdctl would).
  const admin = new Etcd3({
    hosts: `https://${etcd.endpoint}`,
    credentials: {
      rootCertificate: readFileSync(tls.ca),
      certChain: readFileSync(tls.clientCert),
      privateKey: readFileSync(tls.clientKey),
    },
  });
  t.teardown(() => admin.close());
  await admin.role('root').create();
  await admin.user('root').create('root-secret');
  await admin.user('root').addRole('root');
  await admin.auth.authEnable({});
  const password = join(files, 'password');
  writeFileSync(password, 'root-secret\n', { mode: 0o600 });
  const asUser = await cli(dir, [
    ...withTls,
    '--etcd-user',
    'root',
    '--etcd-password-file',
    password,
    'lease',
    'ls',
    '--json',
  ]);
  t.equal(asUser.exitCode, 0, asUser.stderr);
  t.equal(JSON.parse(asUser.stdout).length, 1, 'the lease taken before auth is read back');
  const wrong = await cli(dir, [...withTls, '--etcd-user', 'root', 'lease', 'ls'], {
    PIPEWRIGHT_ETCD_PASSWORD: 'guess',
  });
  t.equal(wrong.exitCode, 1);
  t.match(wrong.stderr, /^pipewright: etcd at \S+ refused user root: wrong user or password$/);
});

t.test(
  'plain http only to loopback unless asked for by name; TLS options are checked before any connection',
  async (t) => {
    const dir = stateDir(t);
    const cases: [string[], RegExp][] = [
      [
        ['--store', 'etcd://10.1.2.3:2379'],
        /etcd at 10\.1\.2\.3:2379 without TLS would send leases and passwords in clear: give --etcd-ca .* or write etcd\+http:\/\//,
      ],
      [['--store', 'etcd://127.0.0.1:1,10.1.2.3:2379'], /etcd at 10\.1\.2\.3:2379 without TLS/],
      [['--store', 'etcd://127.0.0.1:2379', '--etcd-cert', '/x.pem'], /--etcd-cert and --etcd-key go together/],
      [
        ['--store', 'etcd://127.0.0.1:2379', '--etcd-user', 'u'],
        /needs a password: PIPEWRIGHT_ETCD_PASSWORD or --etcd-password-file/,
      ],
      [['--store', 'etcs://127.0.0.1:2379'], /must be sqlite or etcd:\/\//],
    ];
    for (const [args, message] of cases) {
      const t0 = Date.now();
      const r = await cli(dir, [...args, 'pool', 'ls']);
      t.equal(r.exitCode, 2, args.join(' '));
      t.match(r.stderr, message);
      t.ok(Date.now() - t0 < 3000, 'refused at once, before any connection');
    }
    const file = await cli(dir, ['--store', 'etcd://127.0.0.1:2379', '--etcd-ca', '/no/such/ca.pem', 'pool', 'ls']);
    t.equal(file.exitCode, 1);
    t.match(file.stderr, /cannot read the etcd CA \/no\/such\/ca\.pem \(ENOENT\)/);
  },
);
