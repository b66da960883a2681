/**
 * A plugin's input (a CNI runtime's or netavark's JSON on stdin), read whole, with a bound: a
 * network config is a few KiB, so a caller that streams more is refused rather than buffered.
 */
import { PipewrightError } from './errors.js';

/** 1 MiB: far above any network config, far below what would strain the process. */
export const STDIN_LIMIT = 1 << 20;

export function readStdin(limit = STDIN_LIMIT): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      text += d;
      if (text.length > limit) {
        process.stdin.destroy();
        reject(new PipewrightError(`the input on stdin is over ${limit} bytes: not a network config`));
      }
    });
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}
