/**
 * The guest's kernel and initramfs. The kernel is Debian's stock one (linux-image-amd64), whose
 * modules live under the host's /lib/modules, which the guest sees through the shared root. The
 * initramfs holds only busybox, stage 1 and the modules that mount that root; it is built once per
 * kernel and stage 1 script, in /var/cache/pipewright-vm.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

export const CACHE = '/var/cache/pipewright-vm';
export const STAGE1 = fileURLToPath(new URL('./stage1-init', import.meta.url));
export const STAGE2 = fileURLToPath(new URL('./stage2-init', import.meta.url));

/** What mounts the shared root, in load order (each after what it needs). */
const ROOT_MODULES = [
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci',
  'fs/netfs/netfs',
  'fs/fscache/fscache',
  'net/9p/9pnet',
  'net/9p/9pnet_virtio',
  'fs/9p/9p',
  'fs/overlayfs/overlay',
];

export interface GuestKernel {
  release: string;
  vmlinuz: string;
  initrd: string;
}

/** The newest /boot/vmlinuz-* whose modules are installed, or why there is none. */
export function findKernel(): { release: string; vmlinuz: string } | string {
  const releases = existsSync('/boot')
    ? readdirSync('/boot')
        .filter((f) => f.startsWith('vmlinuz-'))
        .map((f) => f.slice('vmlinuz-'.length))
        .filter((r) => existsSync(`/lib/modules/${r}/modules.dep`))
    : [];
  const release = releases.sort().at(-1);
  if (!release) return 'no guest kernel: install linux-image-amd64 (scripts/setup-host.sh --vm does)';
  return { release, vmlinuz: `/boot/vmlinuz-${release}` };
}

/** The kernel and an initramfs for it, built unless the cache holds one for this stage 1. */
export async function guestKernel(): Promise<GuestKernel> {
  const kernel = findKernel();
  if (typeof kernel === 'string') throw new Error(kernel);
  const stage1 = readFileSync(STAGE1);
  const key = createHash('sha256')
    .update(kernel.release)
    .update(stage1)
    .update(ROOT_MODULES.join())
    .digest('hex')
    .slice(0, 12);
  const initrd = join(CACHE, `initrd-${kernel.release}-${key}.gz`);
  if (!existsSync(initrd)) await buildInitrd(kernel.release, initrd);
  return { ...kernel, initrd };
}

async function buildInitrd(release: string, out: string): Promise<void> {
  const root = mkdtempSync('/tmp/pw-initrd-');
  try {
    for (const d of ['bin', 'modules', 'proc', 'sys', 'dev']) mkdirSync(join(root, d));
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    copyFileSync(STAGE1, join(root, 'init'));
    const names = ROOT_MODULES.map((m) => {
      const name = m.split('/').at(-1)!;
      copyFileSync(`/lib/modules/${release}/kernel/${m}.ko`, join(root, 'modules', `${name}.ko`));
      return name;
    });
    writeFileSync(join(root, 'modules.list'), names.join('\n') + '\n');
    const files = (await execa('find', ['.'], { cwd: root })).stdout;
    const cpio = await execa('cpio', ['-o', '-H', 'newc', '--quiet'], { cwd: root, input: files, encoding: 'buffer' });
    mkdirSync(CACHE, { recursive: true });
    writeFileSync(`${out}.tmp`, gzipSync(cpio.stdout, { level: 1 }));
    renameSync(`${out}.tmp`, out);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
