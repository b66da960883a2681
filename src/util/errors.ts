/**
 * Errors a user can act on. `UsageError` means the command line itself was wrong (exit 2);
 * `PipewrightError` means the request was understood but could not be done (exit 1).
 * Both carry one line that says what was wrong and what to do.
 */
export class PipewrightError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PipewrightError';
  }
}

export class UsageError extends PipewrightError {
  override readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A step that changed (or tried to change) the host failed; names the step. */
export class StepError extends PipewrightError {
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(`${step} failed: ${describe(cause)}`, { cause });
    this.name = 'StepError';
  }
}

/** The first meaningful line of an error, for one-line messages. */
export function describe(err: unknown): string {
  if (err instanceof Error) {
    const stderr = (err as { stderr?: unknown }).stderr;
    if (typeof stderr === 'string' && stderr.trim()) return firstLine(stderr);
    return firstLine(err.message);
  }
  return firstLine(String(err));
}

function firstLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)[0] ?? 'unknown error'
  );
}
