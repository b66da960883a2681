/** A throwaway etcd on loopback with a temp data dir, stopped and removed at teardown. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

type T = { teardown(fn: () => unknown): void };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
      .listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      })
      .on('error', reject);
  });
}

export async function startEtcd(t: T): Promise<string> {
  return (await startEtcdProcess(t)).endpoint;
}

/** The endpoint (host:port) and the server's pid (to stall it with SIGSTOP). */
export async function startEtcdProcess(t: T): Promise<{ endpoint: string; pid: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pipewright-etcd-'));
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
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
    ],
    { stdio: 'ignore' },
  );
  t.teardown(async () => {
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r).once('error', r));
    rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return { endpoint: `127.0.0.1:${client}`, pid: proc.pid! };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('etcd did not start within 10 s');
}
