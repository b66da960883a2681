/**
 * Reading an apply file (YAML or JSON): checked against the shipped JSON Schema
 * (schema/apply.schema.json), and every error names the path in the file and its line.
 */
import { Ajv } from 'ajv';
import { readFileSync } from 'node:fs';
import { shipped } from '../util/paths.js';
import { LineCounter, parseDocument } from 'yaml';
import { UsageError } from '../util/errors.js';

export interface ApplyFile {
  pools?: {
    name: string;
    subnet: string;
    gateway?: string | null;
    range?: string;
    exclude?: string[];
    labels?: Record<string, string>;
  }[];
  networks?: { name: string; bridge: string; pool: string; masquerade?: boolean; isolated?: boolean }[];
  volumes?: { name: string; labels?: Record<string, string>; opts?: string[]; size?: string }[];
  containers?: {
    container: string;
    interfaces?: {
      on: string;
      ifname?: string;
      addresses: string[];
      mac?: string;
      mtu?: number;
      routes?: string[];
      publish?: string[];
      metric?: number;
      rate?: string;
      sbr?: boolean;
    }[];
    mounts?: string[];
  }[];
}

export const SCHEMA_PATH = shipped('schema/apply.schema.json');

/** Where a path ("containers/0/interfaces/1") sits in the file, for error messages. */
export type Locate = (path: (string | number)[]) => string;

export function loadApplyFile(file: string): { spec: ApplyFile; locate: Locate } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new UsageError(`${file}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
  }
  const locate: Locate = (path) => {
    const node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
    const line = node?.range ? lines.linePos(node.range[0]).line : undefined;
    const where =
      path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
        .join('')
        .replace(/^\./, '') || '(top)';
    return `${file}${line ? `:${line}` : ''}: ${where}`;
  };
  const spec = (doc.toJS() ?? {}) as ApplyFile;
  const ajv = new Ajv({ allErrors: false });
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')));
  if (!validate(spec)) {
    const e = validate.errors![0];
    const path = e.instancePath
      .split('/')
      .slice(1)
      .map((p: string) => (/^\d+$/.test(p) ? Number(p) : p));
    const extra =
      e.keyword === 'additionalProperties'
        ? ` "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : '';
    throw new UsageError(`${locate(path)}: ${e.message}${extra}`);
  }
  return { spec, locate };
}
