/** Labels as `key=value` arguments (pools, volumes), and label filters. */
import { UsageError } from './errors.js';

export function parseLabels(labels: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of labels) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new UsageError(`label "${l}" must be key=value`);
    out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

/** `--filter label=k=v` (repeatable): every one must match. */
export function matchesLabels(labels: Record<string, string>, filters: string[]): boolean {
  return Object.entries(parseLabels(filters)).every(([k, v]) => labels[k] === v);
}
