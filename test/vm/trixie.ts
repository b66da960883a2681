/**
 * A Debian 13 (trixie) environment for the tests that need Podman 5 and netavark: the root that
 * scripts/build-trixie-root.sh debootstraps (cached in /var/cache/pipewright-vm), entered with
 * chroot inside a private mount namespace and a network namespace of its own, so nothing podman,
 * netavark or pipewright do reaches the host's mounts, links or firewall. The checkout is shared
 * in read-only at its own path, with the host's Node (test/vm/trixie-holder.sh).
 */
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CHECKOUT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
export const TRIXIE_ROOT = process.env.PIPEWRIGHT_TRIXIE_ROOT ?? '/var/cache/pipewright-vm/trixie-root';
/** The second root, with Docker 26 instead of Podman (build-trixie-root.sh's `docker` set). */
export const TRIXIE_DOCKER_ROOT =
  process.env.PIPEWRIGHT_TRIXIE_DOCKER_ROOT ?? '/var/cache/pipewright-vm/trixie-docker-root';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Builds the root if it is missing or stale; why it cannot be, else null. */
export async function buildTrixieRoot(
  root = TRIXIE_ROOT,
  set: 'podman' | 'docker' = 'podman',
): Promise<{ reason: string | null; seconds: number }> {
  const started = Date.now();
  const r = await execa('bash', [join(CHECKOUT, 'scripts/build-trixie-root.sh'), root, set], { reject: false });
  const seconds = (Date.now() - started) / 1000;
  if (r.exitCode === 0) return { reason: null, seconds };
  return { reason: `cannot build the trixie root: ${String(r.stderr).trim().split('\n').pop()}`, seconds };
}

/**
 * A test file's root, built (or found cached) before its tests, with room for a cold build
 * (150-170 s) on top of them; without root, or where it cannot be built, the file is skipped
 * with the reason.
 */
export async function rootForTests(
  t: { setTimeout(ms: number): void; plan(n: number, why: string): void; comment(text: string): void },
  root = TRIXIE_ROOT,
  set: 'podman' | 'docker' = 'podman',
): Promise<void> {
  t.setTimeout(600_000);
  const built =
    process.getuid?.() === 0
      ? await buildTrixieRoot(root, set)
      : { reason: 'needs root (namespaces, chroot)', seconds: 0 };
  if (built.reason) {
    t.plan(0, built.reason);
    process.exit();
  }
  t.comment(`trixie ${set} root ready in ${built.seconds.toFixed(1)} s`);
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class TrixieEnv {
  private constructor(
    readonly pid: number,
    private readonly holder: ReturnType<typeof execa>,
    private readonly dir: string,
  ) {}

  /** Starts the environment: its holder process, chrooted in the overlay, waiting. */
  static async start(root = TRIXIE_ROOT): Promise<TrixieEnv> {
    const dir = mkdtempSync('/tmp/pw-trixie-');
    const modules = join(CHECKOUT, 'node_modules');
    const shared = [CHECKOUT, ...(existsSync(modules) ? [dirname(realpathSync(modules))] : [])];
    // setpriv: the environment dies with this process, however it ends (unshare --kill-child
    // passes the signal on to the holder).
    const holder = execa(
      'setpriv',
      [
        '--pdeathsig',
        'KILL',
        'unshare',
        '--mount',
        '--net',
        '--propagation',
        'private',
        '--fork',
        '--kill-child',
        'bash',
        join(CHECKOUT, 'test/vm/trixie-holder.sh'),
        root,
        dir,
        ...new Set(shared),
      ],
      { reject: false, buffer: false, stdin: 'ignore' },
    );
    let stderr = '';
    holder.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const ready = await new Promise<boolean>((resolve) => {
      holder.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve(true));
      void holder.then(() => resolve(false));
    });
    const pid = ready ? childOf(holder.pid!) : 0;
    if (!pid) {
      rmSync(dir, { recursive: true, force: true });
      holder.kill('SIGKILL');
      await holder;
      throw new Error(`the trixie environment did not start: ${stderr.trim()}`);
    }
    return new TrixieEnv(pid, holder, dir);
  }

  /** A command inside: its mount and network namespace, its root, a clean environment. */
  async run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
    const r = await this.spawn(cmd, args, opts);
    return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  }

  /** A command inside, left running: its process (nsenter execs the command, so its pid is the command's). */
  spawn(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
    return execa('nsenter', ['-t', String(this.pid), '-m', '-n', '-r', '-w', '--', cmd, ...args], {
      reject: false,
      input: opts.input,
      extendEnv: false,
      env: { PATH, HOME: '/root', LANG: 'C.UTF-8', ...opts.env },
    });
  }

  /** As run, and throws with its stderr unless it exits 0. */
  async must(
    cmd: string,
    args: string[],
    opts: { input?: string; env?: Record<string, string> } = {},
  ): Promise<string> {
    const r = await this.run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /** Every process of the environment killed (they are all ours), its mounts gone with them, its files removed. */
  async stop(): Promise<void> {
    const mnt = nsOf(this.pid, 'mnt');
    for (let round = 0; round < 5; round++) {
      const inside = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && nsOf(Number(p), 'mnt') === mnt);
      if (!inside.length) break;
      for (const p of inside) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await this.holder;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function nsOf(pid: number, ns: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** unshare --fork's child (the holder script, then its chrooted sleep); setpriv became unshare. */
function childOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0;
  }
}
