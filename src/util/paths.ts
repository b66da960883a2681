/**
 * Files pipewright ships next to its code (native helpers, the DHCP hook, the apply schema),
 * found from the package root, so the same code works from dist/ modules and from the bundle;
 * and where the host tools it runs are looked up.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The only PATH host tools (iptables, nft, mount, udhcpc, docker...) are looked up in: a root tool
 * must not run whatever a caller's PATH puts first under a familiar name.
 */
export const TOOL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The host's store: where every front end keeps its state unless told otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/pipewright';

/** Whether a host tool is installed in TOOL_PATH (a look, no process). */
export function toolInstalled(name: string): boolean {
  return TOOL_PATH.split(':').some((d) => existsSync(join(d, name)));
}

/** The host tool run under `name`: the first file of TOOL_PATH's that can be run, or null. */
export function toolFile(name: string): string | null {
  for (const dir of TOOL_PATH.split(':')) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK); // for root, any file with an x bit, and directories
      if (statSync(file).isFile()) return file;
    } catch {
      // not there: the next directory
    }
  }
  return null;
}

let root: string | undefined;

/**
 * This module's file. Node 20.11 and later give its path (in the startup snapshot, the bundle's,
 * defined at start); from a URL otherwise, whose round trip costs a command's start ~0.5 ms.
 */
const moduleFile = () => (import.meta as { filename?: string }).filename ?? fileURLToPath(import.meta.url);

export function packageRoot(): string {
  if (root) return root;
  for (let dir = dirname(moduleFile()); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'pipewright') {
      root = dir;
      return root;
    }
  }
  throw new Error('pipewright: cannot find its package directory');
}

/** A shipped file by its path inside the package, e.g. shipped('dist/syscalls.node'). */
export function shipped(path: string): string {
  return join(packageRoot(), path);
}
