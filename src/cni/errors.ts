/**
 * CNI's error answer: a non-zero exit and `{"cniVersion","code","msg","details"}` on stdout, with
 * the spec's codes. pipewright's own errors (a taken address, a missing pool) map to the nearest
 * spec code, their one line as `msg`.
 */
import { describe, PipewrightError, UsageError } from '../util/errors.js';

/** The CNI spec's well-known error codes. */
export const ERR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  limitedConnectivity: 51,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }
}

/** Any error as CNI's answer: a usage error is a bad configuration, another pipewright error an I/O failure. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const msg = describe(err).replace(/\s*\n\s*/g, ' ');
  if (err instanceof UsageError) return new CniError(ERR.invalidConfig, msg);
  if (err instanceof PipewrightError) return new CniError(ERR.io, msg);
  return new CniError(ERR.io, msg, err instanceof Error ? (err.stack?.split('\n')[1]?.trim() ?? '') : '');
}
