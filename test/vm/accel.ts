/**
 * KVM or TCG. /dev/kvm may be there and still not run a stock guest (this workplace's hosts have a
 * PVM-style KVM: a guest hangs before its first line), so KVM is judged by a boot that must print
 * stage 1's first line in time; the verdict is kept per host kernel and QEMU build.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { release } from 'node:os';
import { CACHE } from './kernel.js';

export type Accel = 'kvm' | 'tcg';
export interface AccelChoice {
  accel: Accel;
  why: string;
}

/** How long a KVM guest may take to print stage 1's first line (TCG takes about 2 s). */
export const KVM_PROBE_MS = 15_000;

function kvmOpenable(): string | null {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return null;
  } catch (e) {
    return `/dev/kvm cannot be opened (${(e as NodeJS.ErrnoException).code})`;
  }
}

async function verdictFile(): Promise<string> {
  const qemu = (await execa('qemu-system-x86_64', ['--version'])).stdout.split('\n')[0]!.replace(/\W+/g, '_');
  return `${CACHE}/accel-${release()}-${qemu}`;
}

/**
 * PIPEWRIGHT_VM_ACCEL=kvm|tcg decides; else an earlier verdict; else `probe` boots a KVM guest and
 * says whether it reached stage 1 in time.
 */
export async function chooseAccel(probe: () => Promise<boolean>): Promise<AccelChoice> {
  const forced = process.env.PIPEWRIGHT_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, why: 'PIPEWRIGHT_VM_ACCEL' };
  const closed = kvmOpenable();
  if (closed) return { accel: 'tcg', why: closed };
  const file = await verdictFile();
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as AccelChoice;
  const choice: AccelChoice = (await probe())
    ? { accel: 'kvm', why: 'a KVM guest reached stage 1' }
    : {
        accel: 'tcg',
        why: `/dev/kvm opens, but a KVM guest printed nothing in ${KVM_PROBE_MS / 1000} s (this host's KVM cannot run a stock kernel)`,
      };
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(file, JSON.stringify(choice));
  return choice;
}
