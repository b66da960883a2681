/**
 * One QEMU guest running this checkout with a stock kernel. Its root is the host's, shared
 * read-only over 9p with a tmpfs laid over it (test/vm/stage1-init): every file the host has is
 * there at the same path, nothing the guest writes reaches the host. A second 9p share, the job
 * dir, carries commands in and results out (test/vm/stage2-init's agent); an optional raw disk is
 * the guest's /var/lib, kept across a reset.
 */
import { execa, type ResultPromise } from 'execa';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chooseAccel, KVM_PROBE_MS, type Accel, type AccelChoice } from './accel.js';
import { guestKernel, STAGE2, type GuestKernel } from './kernel.js';

export interface VmOptions {
  /** The guest's hostname, and the prefix of its job dir. */
  name: string;
  memMiB?: number;
  cpus?: number;
  /**
   * The guest's root, shared read-only with a tmpfs over it: the host's own (the default), or
   * another system's (the Debian 13 root of build-trixie-root.sh).
   */
  root?: string;
  /** Host directories shared read-only into the guest at these paths (the checkout, into another root). */
  binds?: { host: string; guest: string }[];
  /** A raw ext4 image: the guest's /var/lib/{docker,containerd,pipewright,etcd} and its boot script. */
  disk?: string;
  /** A tap device (in `netns`) behind the guest's eth0, with this MAC. */
  nic?: { tap: string; mac: string };
  /** QEMU runs in this network namespace (where its tap is). */
  netns?: string;
  /** Each console line, as it comes. */
  onLine?: (line: string) => void;
}

export interface RunResult {
  code: number;
  output: string;
}

let accelChoice: Promise<AccelChoice> | undefined;

/** KVM or TCG for this run, decided once (the first boot may probe). */
export function accel(): Promise<AccelChoice> {
  accelChoice ??= guestKernel().then((k) => chooseAccel(() => probeKvm(k)));
  return accelChoice;
}

async function probeKvm(kernel: GuestKernel): Promise<boolean> {
  const vm = new Vm({ name: 'pw-kvm-probe', memMiB: 512 }, kernel, 'kvm');
  try {
    return await vm.waitLine(/pw-vm: stage 1/, KVM_PROBE_MS).then(
      () => true,
      () => false,
    );
  } finally {
    await vm.kill();
  }
}

export class Vm {
  readonly job: string;
  readonly started = Date.now();
  private readonly proc: ResultPromise;
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private seq = 0;

  /** Boots a guest and waits for its agent. */
  static async boot(opts: VmOptions, timeoutMs = 180_000): Promise<Vm> {
    const kernel = await guestKernel();
    const vm = new Vm(opts, kernel, (await accel()).accel);
    try {
      await vm.ready(0, timeoutMs);
    } catch (e) {
      await vm.kill();
      throw e;
    }
    return vm;
  }

  constructor(
    readonly opts: VmOptions,
    kernel: GuestKernel,
    accel: Accel,
  ) {
    this.job = mkdtempSync(`/tmp/pw-vm-${opts.name}-`);
    for (const d of ['in', 'out']) mkdirSync(join(this.job, d));
    const qemu = ['qemu-system-x86_64', ...qemuArgs(opts, kernel, accel, this.job)];
    const [file, ...args] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...qemu] : qemu;
    this.proc = execa(file!, args, { reject: false, stdin: 'ignore', stderr: 'pipe', buffer: false });
    const take = (chunk: Buffer) => this.take(chunk.toString());
    this.proc.stdout?.on('data', take);
    this.proc.stderr?.on('data', take);
  }

  private partial = '';
  private take(text: string): void {
    const parts = (this.partial + text.replace(/\r/g, '')).split('\n');
    this.partial = parts.pop()!;
    for (const line of parts) {
      this.lines.push(line);
      appendFileSync(join(this.job, 'console.log'), line + '\n');
      this.opts.onLine?.(line);
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** The console so far. */
  console(): string {
    return this.lines.join('\n');
  }

  /** Resolves with the first console line from `from` on that matches, or rejects after `ms`. */
  async waitLine(re: RegExp, ms: number, from = 0): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.slice(from).find((l) => re.test(l));
      if (hit) return hit;
      if (this.proc.exitCode !== null)
        throw new Error(
          `${this.opts.name}: QEMU exited (${this.proc.exitCode}) before ${re}; console:\n${this.tail()}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.opts.name}: no ${re} within ${ms / 1000} s; console:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 500));
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }

  /** Waits for the agent's "ready" line, the `count`-th (0: first boot, 1: after one reset, ...); returns the guest's uptime then. */
  async ready(count: number, ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    while (this.lines.filter((l) => /pw-vm: ready at/.test(l)).length <= count) {
      await this.waitLine(/pw-vm: ready at/, Math.max(deadline - Date.now(), 1), this.lastReadyIndex() + 1);
    }
    return Number(/ready at ([\d.]+)/.exec(this.lines[this.lastReadyIndex()]!)![1]);
  }

  private lastReadyIndex(): number {
    for (let i = this.lines.length - 1; i >= 0; i--) if (/pw-vm: ready at/.test(this.lines[i]!)) return i;
    return -1;
  }

  /** Runs a bash script in the guest as root; its output and exit code. */
  async run(script: string, ms = 600_000): Promise<RunResult> {
    const id = `${process.pid}-${this.seq++}`;
    const path = join(this.job, 'in', `${id}.sh`);
    writeFileSync(`${path}.tmp`, `set -o pipefail\ncd ${process.cwd()}\n${script}\n`);
    renameSync(`${path}.tmp`, path);
    const rc = join(this.job, 'out', `${id}.rc`);
    const deadline = Date.now() + ms;
    while (!existsSync(rc)) {
      if (this.proc.exitCode !== null)
        throw new Error(`${this.opts.name}: QEMU exited while running: ${script.split('\n')[0]}`);
      if (Date.now() > deadline)
        throw new Error(`${this.opts.name}: no end within ${ms / 1000} s of: ${script.split('\n')[0]}`);
      await sleep(100);
    }
    const output = readFileSync(join(this.job, 'out', `${id}.log`), 'utf8');
    return { code: Number(readFileSync(rc, 'utf8')), output };
  }

  /** Runs a script that must succeed; its output. */
  async must(script: string, ms?: number): Promise<string> {
    const r = await this.run(script, ms);
    if (r.code !== 0) throw new Error(`${this.opts.name}: exit ${r.code}: ${script.split('\n')[0]}\n${r.output}`);
    return r.output;
  }

  /** A hard reset, as the reset button (QMP system_reset); resolves once the guest is ready again. */
  async reset(ms = 300_000): Promise<number> {
    const boots = this.lines.filter((l) => /pw-vm: ready at/.test(l)).length;
    await qmp(join(this.job, 'qmp.sock'), 'system_reset');
    return this.ready(boots, ms);
  }

  /** Powers the guest off (or kills QEMU after 20 s) and removes the job dir. */
  async stop(): Promise<void> {
    writeFileSync(join(this.job, 'poweroff'), '');
    const ended = await Promise.race([
      this.proc.then(() => true),
      sleep(20_000, undefined, { ref: false }).then(() => false),
    ]);
    if (!ended) await this.kill();
    rmSync(this.job, { recursive: true, force: true });
  }

  async kill(): Promise<void> {
    this.proc.kill('SIGKILL');
    await this.proc;
    rmSync(this.job, { recursive: true, force: true });
  }
}

function qemuArgs(opts: VmOptions, kernel: GuestKernel, accel: Accel, job: string): string[] {
  const cmdline = [
    'console=ttyS0',
    'panic=-1',
    'quiet',
    'mitigations=off',
    `pw_init=${STAGE2}`,
    `pw_name=${opts.name}`,
    ...(opts.binds?.length ? [`pw_binds=${opts.binds.map((b, i) => `bind${i}:${b.guest}`).join(',')}`] : []),
  ];
  const share = (path: string, tag: string, ro: boolean) => [
    '-virtfs',
    `local,path=${path},mount_tag=${tag},security_model=none,multidevs=remap${ro ? ',readonly=on' : ''}`,
  ];
  return [
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    ['-smp', String(opts.cpus ?? 2)],
    ['-m', String(opts.memMiB ?? 2048)],
    ['-display', 'none', '-monitor', 'none', '-serial', 'stdio'],
    ['-qmp', `unix:${join(job, 'qmp.sock')},server=on,wait=off`],
    ['-kernel', kernel.vmlinuz, '-initrd', kernel.initrd, '-append', cmdline.join(' ')],
    share(opts.root ?? '/', 'hostroot', true),
    ...(opts.binds ?? []).map((b, i) => share(b.host, `bind${i}`, true)),
    share(job, 'job', false),
    opts.disk ? ['-drive', `file=${opts.disk},if=virtio,format=raw`] : [],
    opts.nic
      ? [
          '-netdev',
          `tap,id=lan,ifname=${opts.nic.tap},script=no,downscript=no`,
          '-device',
          `virtio-net-pci,netdev=lan,mac=${opts.nic.mac}`,
        ]
      : ['-nic', 'none'],
  ].flat();
}

/** One QMP command on the guest's monitor socket: the greeting, capabilities, the command; two returns. */
async function qmp(socket: string, command: string): Promise<void> {
  const conn = connect(socket);
  try {
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      let returns = 0;
      conn.on('error', reject);
      conn.on('data', (d) => {
        buffered += d.toString();
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const msg = JSON.parse(buffered.slice(0, nl)) as {
            QMP?: unknown;
            error?: { desc: string };
            return?: unknown;
          };
          buffered = buffered.slice(nl + 1);
          if (msg.QMP)
            conn.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n${JSON.stringify({ execute: command })}\n`);
          else if (msg.error) reject(new Error(`QMP ${command}: ${msg.error.desc}`));
          else if ('return' in msg && ++returns === 2) resolve();
        }
      });
    });
  } finally {
    conn.destroy();
  }
}
