/**
 * "Undo as you go": every step that changes the host registers its inverse; on failure the
 * inverses run newest first, and the error that is raised names the step that failed.
 */
import { StepError, describe } from './errors.js';
import type { StepLog } from './log.js';
import { silent } from './log.js';
import { afterStep, beforeStep } from './faults.js';

type Inverse = () => Promise<unknown> | void;

export class UndoStack {
  private readonly inverses: { name: string; fn: Inverse }[] = [];

  constructor(private readonly log: StepLog = silent) {}

  /** Runs one step; if it throws, wraps the error with the step's name. */
  async step<T>(name: string, fn: () => Promise<T> | T, inverse?: Inverse): Promise<T> {
    let result: T;
    try {
      beforeStep(name);
      result = await fn();
    } catch (err) {
      throw err instanceof StepError ? err : new StepError(name, err);
    }
    afterStep(name);
    if (inverse) this.inverses.push({ name, fn: inverse });
    return result;
  }

  /** Registers an inverse for something already done. */
  push(name: string, fn: Inverse): void {
    this.inverses.push({ name, fn });
  }

  /** Rolls back everything registered; failures to undo are reported, not thrown, so all inverses run. */
  async rollback(): Promise<string[]> {
    const failures: string[] = [];
    for (const { name, fn } of this.inverses.splice(0).reverse()) {
      this.log.step(`undo: ${name}`);
      try {
        await fn();
      } catch (err) {
        failures.push(`undo of "${name}": ${describe(err)}`);
      }
    }
    return failures;
  }

  /** Runs body; on any error rolls back and rethrows (with rollback failures appended). */
  async all<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      const failures = await this.rollback();
      if (failures.length && err instanceof Error) err.message += ` (and ${failures.join('; ')})`;
      throw err;
    }
  }
}
