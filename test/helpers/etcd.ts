/** A throwaway etcd on loopback with a temp data dir, stopped and removed at teardown; TLS on request. */
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { waitStopped } from './host.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

type T = { teardown(fn: () => unknown): void };

/** Free loopback ports, held open together until all are known, so no two are the same. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const srv = createServer()
            .listen(0, '127.0.0.1', () => resolve(srv))
            .on('error', reject);
        }),
    ),
  );
  const ports = servers.map((srv) => (srv.address() as { port: number }).port);
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

export async function startEtcd(t: T): Promise<string> {
  return (await startEtcdProcess(t)).endpoint;
}

/** TLS files made with openssl for one test etcd: a CA, the server's certificate (127.0.0.1) and a client's. */
export interface TlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export function makeTlsFiles(dir: string): TlsFiles {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=pipewright test CA',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
  );
  for (const [who, san] of [
    ['server', 'IP:127.0.0.1'],
    ['client', 'DNS:client'],
  ]) {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${who}`,
      '-keyout',
      f(`${who}.key`),
      '-out',
      f(`${who}.csr`),
    );
    const ext = f(`${who}.ext`);
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=${who === 'server' ? 'serverAuth' : 'clientAuth'}\n`);
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${who}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      ext,
      '-out',
      f(`${who}.pem`),
    );
  }
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

/**
 * The endpoint (host:port) and the server's pid (to stall it with SIGSTOP); with `tls`, clients
 * must show a certificate.
 */
export async function startEtcdProcess(t: T, tls?: TlsFiles): Promise<{ endpoint: string; pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-etcd-'));
  const [client, peer] = await freePorts(2);
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${client}`;
  const tlsArgs = tls
    ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth']
    : [];
  const proc = spawn(
    'etcd',
    [
      '--name',
      'test',
      '--data-dir',
      dir,
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `test=http://127.0.0.1:${peer}`,
      '--log-level',
      'error',
      ...tlsArgs,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(async () => {
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r).once('error', r));
    rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 100; i++) {
    // Something answering on the port is this etcd only while it runs (another may have taken the port).
    const exited = () => proc.exitCode !== null || proc.signalCode !== null;
    if (exited()) throw new Error(`etcd exited at start (${proc.exitCode ?? proc.signalCode})`);
    if ((await listening(client)) && !exited()) return { endpoint: `127.0.0.1:${client}`, pid: proc.pid! };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('etcd did not start within 10 s');
}

/** Stops process `pid` (SIGSTOP) and returns once every thread of it is stopped (waitStopped). */
export async function stall(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await waitStopped(pid);
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.destroy();
      resolve(true);
    }).on('error', () => resolve(false));
  });
}
