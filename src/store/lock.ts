/**
 * A host-wide lock between pipewright processes (a file created exclusively, holding the owner's
 * pid). Used where the kernel is read and then changed (firewall sync), which a SQLite
 * transaction cannot span. A lock whose owner died is taken over.
 */
import { openSync, closeSync, writeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PipewrightError } from '../util/errors.js';
import { processAlive } from '../util/process.js';

export async function withLock<T>(stateDir: string, name: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const path = join(stateDir, `${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSafe(path));
      if (owner && !processAlive(owner)) rmSync(path, { force: true });
      else if (Date.now() > deadline) throw new PipewrightError(`pipewright pid ${owner} holds ${path} for over ${timeoutMs / 1000} s; retry later`);
      else await new Promise((r) => setTimeout(r, 5));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
