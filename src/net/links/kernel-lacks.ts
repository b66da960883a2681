/** The kernel's answer to a link kind it was built without, as one line naming what it lacks. */
import { PipewrightError } from '../../util/errors.js';
import { errno } from '../rtnetlink/errno.js';

/**
 * A catch handler: "Unknown device type" (errno 95, which Node names ENOTSUP) names `config`; any
 * other error passes.
 */
export function unlessKernelLacks(kind: string, config: string): (err: unknown) => never {
  return (err) => {
    if (!['ENOTSUP', 'EOPNOTSUPP'].includes(errno(err) ?? '')) throw err;
    throw new PipewrightError(
      `this kernel cannot make ${kind} links (built without ${config}, or its module is missing): ${(err as Error).message}`,
    );
  };
}
