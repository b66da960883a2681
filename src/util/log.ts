/**
 * Where the core reports each host-changing step. The CLI's --verbose prints them; a library user can
 * collect them or pass `silent`. The core never writes to stdout/stderr itself.
 */
export interface StepLog {
  step(message: string): void;
}

export const silent: StepLog = { step() {} };

export function stderrLog(prefix = '+ '): StepLog {
  return { step: (message) => process.stderr.write(`${prefix}${message}\n`) };
}
