/** The long-running commands' logs (watch, daemon): one line per event, JSON or human text, on stdout. */
import { printable } from '../model/validate.js';
import { UsageError } from '../util/errors.js';

export type LogLine = (fields: object, text: string) => void;

/** A writer for `--log-format json|text`: JSON gets the fields (and the time), text the time and `text`. */
export function logLines(format: string): LogLine {
  if (format !== 'json' && format !== 'text')
    throw new UsageError(`--log-format "${printable(format)}" must be json or text`);
  return (fields, text) => {
    const time = new Date().toISOString();
    process.stdout.write(format === 'json' ? `${JSON.stringify({ time, ...fields })}\n` : `${time} ${text}\n`);
  };
}
